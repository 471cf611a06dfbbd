"""Falhas em volta do caminho feliz: nenhum par, cliente, pausa ou erro de digitação trava,
faz dar voltas ou engana o cluster. Processos reais; pares falsos falam o protocolo direto.

Os testes lentos têm logo acima um comentário "# Lento (~N s): por quê".
"""

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from conftest import (AMBIENTE_FILHO, PRAZO, RAIZ, SeguidorFalso, aceita_conexao, enderecos,
                      esperar, esperar_unido, get_direto, init_digitado, ip_de_contato, linha_json,
                      so_com_proc, so_posix, trocar)
from Cliente import Cliente
from Mensagem import Mensagem
from Servidor import Servidor

MIB = 1024 * 1024
# O prazo de replicação dos testes (--prazo-replicacao): o mecanismo é o mesmo do padrão, 40 s.
PRAZO_CURTO = 3
# Um PUT que não espera nenhum seguidor leva de 2 a 50 ms aqui, mesmo com a máquina cheia; um
# que espera um seguidor retirado leva um prazo de replicação inteiro (PRAZO_CURTO) ou mais.
# Meio segundo a menos que o prazo separa os dois e é mais de 40 vezes o que o PUT leva.
SEM_ESPERA = PRAZO_CURTO - 0.5


def put_cronometrado(cliente, key, value, servidor):
    """Faz o PUT numa thread; devolve (thread, resultado: lista com (resposta, segundos))."""
    resultado = []

    def fazer():
        inicio = time.monotonic()
        resposta, _ = cliente.put(key, value, servidor=servidor)
        resultado.append((resposta, time.monotonic() - inicio))
    thread = threading.Thread(target=fazer, daemon=True)
    thread.start()
    return thread, resultado


def tem_ipv6():
    """Dá para abrir uma porta em ::1 nesta máquina?"""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


def localhost_em_ipv6():
    """localhost resolve para ::1 aqui (e dá para abrir uma porta em ::1)?"""
    try:
        enderecos_de_localhost = {info[4][0] for info in socket.getaddrinfo(
            "localhost", None, 0, socket.SOCK_STREAM)}
    except OSError:
        return False
    return tem_ipv6() and "::1" in enderecos_de_localhost


# ------------------------------------------------- 1. JOINs falsos e pausas


def test_join_mudo_nao_segura_puts(cluster, cliente):
    """[5c][5e] JOIN que não lê o snapshot, ou lê e não confirma: não está unido, PUTs seguem."""
    (lider, _, _), portas = cluster.tres()
    cliente.inicializar(enderecos(portas))
    # 18 MiB guardados: um snapshot que não cabe nos buffers do socket.
    for i in range(3):
        assert cliente.put("grande%d" % i, "x" * (6 * MIB))[0].tipo == Mensagem.PUT_OK
    mudos = [SeguidorFalso(portas[0], "127.0.0.1:1"), SeguidorFalso(portas[0], "127.0.0.1:2")]
    try:
        mudos[1].resposta()   # lê a cópia e não confirma
        for i in range(5):
            inicio = time.monotonic()
            resposta, _ = cliente.put("k", "v%d" % i, servidor=("127.0.0.1", portas[0]))
            assert resposta.tipo == Mensagem.PUT_OK
            # Um PUT leva milissegundos; um que esperasse o JOIN mudo levaria o prazo de
            # replicação do líder (40 s). PRAZO / 3 (5 s) separa os dois com folga.
            assert time.monotonic() - inicio < PRAZO / 3, "o PUT esperou o JOIN falso"
    finally:
        for mudo in mudos:
            mudo.fechar()
    lider.exigir_vivo()


def test_join_com_endereco_de_seguidor_vivo_nao_libera_put_antes_da_hora(cluster, cliente):
    """[5e] Um JOIN falso com a origem de um seguidor vivo não o tira do conjunto: o PUT_OK
    só sai depois que o seguidor de verdade (lento) aplicou a REPLICATION."""
    (lider, _, lento), portas = cluster.tres(atraso=2)
    cliente.inicializar(enderecos(portas))
    thread, resultado = put_cronometrado(cliente, "k", "v", ("127.0.0.1", portas[0]))
    esperar(lambda: "Cliente" in "".join(lider.linhas()), motivo="o líder receber o PUT")
    with SeguidorFalso(portas[0], "127.0.0.1:%d" % portas[2]) as falso:
        assert falso.resposta()["tipo"] == "JOIN_OK"
        thread.join(PRAZO)
        assert resultado, "o PUT não terminou"
        # O seguidor lento já tem o valor quando o PUT_OK chega ao cliente.
        assert get_direto(portas[2], "k", 1) == {"tipo": "GET_OK", "key": "k", "value": "v",
                                                 "timestamp": 1}
        assert "REPLICATION key:k value:v ts:1" in lento.linhas_agora()


# Lento (~5 s): espera o prazo de replicação (encurtado para 3 s) passar uma vez.
@so_posix
def test_seguidor_pausado_e_par_que_nao_confirma_sao_retirados_e_voltam(cluster, cliente):
    """[5e] Seguidor pausado (SIGSTOP) e seguidor falso que nunca confirma: o PUT termina
    no prazo de replicação, os seguintes não esperam, e o pausado volta com tudo."""
    (lider, _, pausado), portas = cluster.tres(
        extras_lider=("--prazo-replicacao", str(PRAZO_CURTO)))
    unioes = lider.unioes(portas[2])
    cliente.inicializar(enderecos(portas))
    falso = SeguidorFalso(portas[0], "127.0.0.1:1")
    assert falso.resposta()["tipo"] == "JOIN_OK"
    falso.confirmar()
    esperar_unido(lider, 1)   # no conjunto antes do PUT: ele espera os dois
    try:
        pausado.popen.send_signal(signal.SIGSTOP)
        inicio = time.monotonic()
        resposta, _ = cliente.put("k", "v1", servidor=("127.0.0.1", portas[0]))
        demora = time.monotonic() - inicio
        assert resposta.tipo == Mensagem.PUT_OK
        assert PRAZO_CURTO - 1 < demora < PRAZO_CURTO + PRAZO, demora
        for i in range(5):
            inicio = time.monotonic()
            resposta, _ = cliente.put("k", "v%d" % (i + 2), servidor=("127.0.0.1", portas[0]))
            assert resposta.tipo == Mensagem.PUT_OK
            assert time.monotonic() - inicio < SEM_ESPERA, "o PUT esperou um seguidor retirado"
        esperar(lambda: len(lider.erro().splitlines()) == 2, motivo="o líder avisar duas vezes")
        erros = lider.erro().splitlines()
        assert all(e.startswith("Seguidor 127.0.0.1:") and "retirado" in e for e in erros), erros
    finally:
        pausado.popen.send_signal(signal.SIGCONT)
        falso.fechar()
    # O líder o pôs de novo no conjunto (não basta ele responder um GET: isso ele faz sempre).
    esperar_unido(lider, portas[2], antes=unioes)
    assert get_direto(portas[2], "k", 6) == {"tipo": "GET_OK", "key": "k", "value": "v6",
                                             "timestamp": 6}


# -------------------------------------------- 2. configuração que daria voltas


LOCALHOST_IPV6 = pytest.mark.skipif(not localhost_em_ipv6(),
                                    reason="localhost não resolve para ::1 nesta máquina")


@pytest.mark.parametrize("ip, ip_lider", [
    ("0.0.0.0", "127.0.0.1"), ("127.0.0.1", "localhost"), ("localhost", "127.0.0.1"),
    pytest.param("::1", "localhost", marks=LOCALHOST_IPV6),
    pytest.param("localhost", "::1", marks=LOCALHOST_IPV6),
])
def test_lider_reconhece_o_proprio_endereco_escrito_de_outro_jeito(cluster, ip, ip_lider):
    """[5a][5c] Escuta em 0.0.0.0, ou localhost contra 127.0.0.1 ou ::1: é o líder; o PUT é
    gravado."""
    lider = cluster.servidor(None, None, ip=ip, ip_lider=ip_lider)
    resposta = trocar(lider.porta, {"tipo": "PUT", "key": "k", "value": "v"},
                      ip=ip_de_contato(ip))
    assert (resposta["tipo"], resposta["timestamp"]) == ("PUT_OK", 1), resposta
    assert lider.erro() == ""


@pytest.mark.skipif(not tem_ipv6(), reason="sem IPv6")
@pytest.mark.parametrize("ip, ip_lider", [("::1", "127.0.0.1"), ("127.0.0.1", "::1")])
def test_127_0_0_1_e_1_sao_enderecos_diferentes(cluster, ip, ip_lider):
    """[5a][5c] Um servidor em ::1 com o líder em 127.0.0.1 na mesma porta (ou o contrário) é
    seguidor: encaminha o PUT ao líder, que ali não atende (porta presa pelo teste), e recebe o
    ERRO que o nomeia; o GET segue a regra da 5f."""
    porta = cluster.porta_morta(ip=ip_lider)
    seguidor = cluster.servidor(porta, porta, ip=ip, ip_lider=ip_lider)
    resposta = trocar(porta, {"tipo": "PUT", "key": "k", "value": "v"}, ip=ip)
    assert resposta == {"tipo": "ERRO", "value": "o líder %s:%d está fora do ar; o PUT não foi "
                        "feito" % (ip_lider, porta)}
    assert get_direto(porta, "k", ip=ip) == {"tipo": "GET_OK", "key": "k", "value": None,
                                             "timestamp": 0}
    assert seguidor.linhas_agora()[0] == "Encaminhando PUT key:k value:v"


def test_dois_servidores_que_se_apontam_como_lider_nao_dao_voltas(cluster):
    """[5c] A diz que B é o líder e B diz que A é: o PUT recebe ERRO, cada um avisa uma vez
    em stderr, e os dois seguem respondendo."""
    pa, pb = cluster.reservar(), cluster.reservar()
    a, b = cluster.servidor(pa, pb), cluster.servidor(pb, pa)
    for _ in range(3):
        resposta = trocar(pa, {"tipo": "PUT", "key": "k", "value": "v"})
        assert resposta["tipo"] == "ERRO" and "não é o líder" in resposta["value"], resposta
    assert get_direto(pb, "k") == {"tipo": "GET_OK", "key": "k", "value": None, "timestamp": 0}
    b.sincronizar()   # os avisos vieram antes desta linha, pela mesma fila do console
    assert b.erro().count("PUT encaminhado a este servidor, que não é o líder") == 1
    # Cada um diz uma vez que o JOIN foi recusado (o outro é seguidor).
    for proc in (a, b):
        esperar(lambda: "Canal com o líder" in proc.erro(), motivo="%s avisar" % proc.nome)
        assert proc.erro().count("Canal com o líder") == 1


# ----------------------------------------------------- 3. o cliente


def test_put_cujo_servidor_cai_no_meio_e_refeito_sem_gravar_duas_vezes(cluster, cliente, falsos):
    """[4b] O servidor cai depois que o líder gravou: o cliente repete o PUT (mesmo id) em
    outro servidor e o líder o reconhece: uma escrita só."""
    _, portas = cluster.tres()
    # Um "seguidor" que passa o PUT ao líder, espera a resposta dele e cai sem responder.
    que_cai = falsos("repassa", porta_lider=portas[0], depois_do_lider=lambda: None)
    # Só o que cai: o cliente não sabe se o PUT foi feito e diz isso.
    cliente.inicializar(enderecos([que_cai.porta]))
    with pytest.raises(ConnectionError, match="pode ou não ter sido feito"):
        cliente.put("k", "v0")
    # O que cai e o líder, sorteados: quando o que cai é o primeiro, o PUT é repetido no líder.
    escritas = 1
    while len(que_cai.pedidos) < 4:
        assert escritas < 40, "o sorteio nunca começou pelo servidor que cai"
        cliente.inicializar(enderecos([que_cai.porta, portas[0]]))
        resposta, servidor = cliente.put("k", "v%d" % escritas)
        escritas += 1
        # Cada PUT digitado grava uma vez só: o ts segue o número de PUTs.
        assert (resposta.tipo, resposta.timestamp, servidor) == \
            (Mensagem.PUT_OK, escritas, ("127.0.0.1", portas[0])), resposta
    assert get_direto(portas[1], "k") == {"tipo": "GET_OK", "key": "k",
                                          "value": "v%d" % (escritas - 1), "timestamp": escritas}


def test_id_repetido_nao_grava_de_novo_e_id_com_outro_pedido_recebe_erro(cluster):
    """[5c] O mesmo PUT (mesmo id) repetido, pelo líder ou por um seguidor, recebe o ts do
    primeiro e não grava nada; o mesmo id com outra key ou outro value recebe ERRO e não grava
    nada."""
    _, portas = cluster.tres()
    put = {"tipo": "PUT", "key": "k", "value": "v", "id": "pedido-1"}
    assert [trocar(porta, put) for porta in (portas[0], portas[1], portas[0])] == \
        [dict(put, tipo="PUT_OK", timestamp=1)] * 3
    for outro in (dict(put, value="w"), dict(put, key="j"), dict(put, value=None)):
        resposta = trocar(portas[2], outro)
        assert resposta["tipo"] == "ERRO" and "já foi usado" in resposta["value"], resposta
    for porta in portas:
        assert get_direto(porta, "k", 1) == {"tipo": "GET_OK", "key": "k", "value": "v",
                                             "timestamp": 1}
        assert get_direto(porta, "j") == {"tipo": "GET_OK", "key": "j", "value": None,
                                          "timestamp": 0}
    assert trocar(portas[0], {"tipo": "PUT", "key": "n", "value": "v"})["timestamp"] == 2


def test_value_que_nao_da_para_enviar_e_erro_local(cluster, cliente):
    """[4b] Um value que não é Unicode válido: ValueError já no cliente; ninguém marcado como falho."""
    _, portas = cluster.tres()
    cliente.inicializar(enderecos(portas))
    with pytest.raises(ValueError):
        cliente.put("k", "\ud800")
    assert cliente.falhas == {}
    assert cliente.put("k", "ok")[0].tipo == Mensagem.PUT_OK


# Lento (~6 s): o prazo do GET num servidor pausado.
@so_posix
def test_menu_nao_trava_num_servidor_pausado(cluster):
    """[4c] GET pelo menu com um servidor pausado (SIGSTOP): pulado depois do prazo do GET,
    e a resposta vem de outro servidor; o menu segue."""
    (_, _, pausado), portas = cluster.tres()
    trocar(portas[0], {"tipo": "PUT", "key": "k", "value": "v"})
    pausado.popen.send_signal(signal.SIGSTOP)
    try:
        # Só o pausado e o líder: o sorteio cai no pausado em metade das vezes.
        proc = cluster.cliente(init_digitado([portas[2], portas[0], portas[2]]) + "GET\nk\n" * 4)
        linhas = proc.fim(prazo=4 * (Cliente.PRAZO_GET + PRAZO))
        assert len(linhas) == 4 and all(
            l == "GET key: k value: v obtido do servidor 127.0.0.1:%d, meu timestamp %d e do "
            "servidor 1" % (portas[0], 0 if i == 0 else 1) for i, l in enumerate(linhas)), linhas
    finally:
        pausado.popen.send_signal(signal.SIGCONT)


def test_porta_e_ip_invalidos_sao_perguntados_de_novo_em_portugues(cluster):
    """[4a][5a] "²", "１" e " 10 097" não são portas; um IP que não resolve também é dito em
    português; tudo perguntado de novo, sem traceback; linha vazia no menu recebe a dica."""
    cluster.cliente("\nINIT\n\n²\n１\n10 097\n\n\n\n\n\n").fim(
        erros=["Opção inválida: digite INIT, PUT ou GET."]
        + ["Porta inválida: use um número de 1 a 65535."] * 3)
    porta = cluster.reservar()
    entrada = "ip.que.nao.existe.invalid\n\n²\n%d\n300.1.2.3\n\n１\n%d\n" % (porta, porta)
    servidor = cluster.iniciar(["Servidor.py"], "interativo", porta, entrada=entrada)
    # A porta abre antes das perguntas do líder; um GET só é atendido depois de todas.
    assert get_direto(porta, "k")["tipo"] == "GET_OK"
    assert servidor.erro().splitlines() == [
        "IP inválido: ip.que.nao.existe.invalid não é um endereço conhecido.",
        "Porta inválida: use um número de 1 a 65535.",
        "IP inválido: 300.1.2.3 não é um endereço conhecido.",
        "Porta inválida: use um número de 1 a 65535."]


# ------------------------------------------------------ 4. o fio e o console


def test_campos_desconhecidos_sao_ignorados_e_bom_e_tolerado(cluster):
    """[5b] Campo desconhecido com qualquer conteúdo (número de 21 dígitos, NaN) é ignorado;
    um BOM UTF-8 no começo da linha é tolerado."""
    _, portas = cluster.tres()
    estranho = b'{"tipo":"PUT","key":"k","value":"v","extra":123456789012345678901,"x":NaN}\n'
    for porta in portas:
        resposta = trocar(porta, estranho)
        assert resposta["tipo"] == "PUT_OK", resposta
    resposta = trocar(portas[1], b'\xef\xbb\xbf{"tipo":"GET","key":"k","timestamp":0}\r\n')
    assert (resposta["tipo"], resposta["value"], resposta["timestamp"]) == ("GET_OK", "v", 3)


def test_quebra_de_linha_no_value_nao_forja_linhas_no_console(cluster):
    """[5c][5d][4b] Um evento é uma linha: \\n, \\r e outros controles saem escapados em
    todos os consoles, e o value guardado não muda."""
    (lider, seg1, seg2), portas = cluster.tres()
    valor = "a\nEnviando PUT_OK ao Cliente 1.2.3.4:5 da key:x ts:9\r\x1b[2Jfim\tok"
    cliente = Cliente()
    cliente.inicializar(enderecos(portas))
    resposta, _ = cliente.put("k\n2", valor, servidor=("127.0.0.1", portas[1]))
    assert resposta.tipo == Mensagem.PUT_OK
    assert cliente.get("k\n2", servidor=("127.0.0.1", portas[2]))[0].value == valor
    cliente.fechar()
    mostrado = "a\\nEnviando PUT_OK ao Cliente 1.2.3.4:5 da key:x ts:9\\r\\x1b[2Jfim\tok"
    assert seg1.linhas_agora()[:2] == ["Encaminhando PUT key:k\\n2 value:%s" % mostrado,
                                       "REPLICATION key:k\\n2 value:%s ts:1" % mostrado]
    assert len(lider.linhas_agora()) == 2
    assert seg2.linhas_agora()[0] == "REPLICATION key:k\\n2 value:%s ts:1" % mostrado
    # No menu do cliente: o value lido sai numa linha só, escapado.
    trocar(portas[0], {"tipo": "PUT", "key": "k3", "value": valor})
    linhas = cluster.cliente(init_digitado(portas) + "GET\nk3\n").fim()
    assert len(linhas) == 1 and linhas[0] in [
        "GET key: k3 value: %s obtido do servidor 127.0.0.1:%d, meu timestamp 0 e do "
        "servidor 2" % (mostrado, porta) for porta in portas], linhas


def cpu_em_ns(pid):
    """A CPU que o processo já gastou, somada das threads (Linux: /proc/<pid>/task/*/schedstat,
    em ns; o utime de /proc/<pid>/stat só anda de 10 em 10 ms)."""
    total = 0
    for tarefa in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, tarefa)) as arquivo:
                total += int(arquivo.read().split()[0])
        except OSError:
            pass  # a thread terminou entre o listdir e o open
    return total


# Lento (~2 s): o servidor precisa ficar parado por mais de um segundo.
@so_com_proc
def test_servidor_parado_quase_nao_gasta_cpu(cluster):
    """[5b] Três servidores parados gastam no máximo uns 3 ms de CPU por segundo cada (SPEC,
    seção 2). Medido aqui: ~0,2 ms/s, nos dois Pythons; 3 ms/s é mais de 10 vezes isso, e um
    servidor que acorda a cada poucos milissegundos passa dele. (A demora de uma linha do
    console é medida no benchmark, não aqui.)"""
    procs, _ = cluster.tres()
    antes = [cpu_em_ns(proc.popen.pid) for proc in procs]
    inicio = time.monotonic()
    esperar(lambda: time.monotonic() - inicio > 1.5, motivo="1,5 s de silêncio")
    segundos = time.monotonic() - inicio
    gastos = [(cpu_em_ns(proc.popen.pid) - a) / 1e6 / segundos for proc, a in zip(procs, antes)]
    assert max(gastos) <= 3.0, "ms de CPU por segundo, parado: %s" % gastos


def lider_com_console_num_pipe(cluster):
    """Um líder cujo stdout é um pipe que o teste lê só quando quiser (um console pausado, como
    o do Windows no modo de seleção); devolve (Popen, porta)."""
    porta = cluster.reservar()
    lider = subprocess.Popen([sys.executable, "-u", "Servidor.py", "127.0.0.1", str(porta),
                              "127.0.0.1", str(porta)], cwd=RAIZ, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                             env=AMBIENTE_FILHO)

    def encerrar():
        lider.kill()
        lider.wait(PRAZO)
        lider.stdout.close()
    cluster.pilha.callback(encerrar)
    esperar(lambda: lider.poll() is not None or aceita_conexao(porta), motivo="abrir a porta")
    assert lider.poll() is None, "o líder saiu com código %s" % lider.returncode
    cluster.soltar(porta)
    return lider, porta


def test_console_que_nao_anda_nao_para_o_cluster(cluster):
    """[5b] O stdout do líder num pipe que ninguém lê (um console pausado): PUTs e GETs
    seguem, e o Ctrl+C ainda encerra sem esperar o console."""
    lider, porta = lider_com_console_num_pipe(cluster)
    cliente = Cliente()
    cliente.inicializar(enderecos([porta]))
    # ~2 000 linhas de ~90 bytes: bem mais que os 64 KiB de um pipe.
    for i in range(1000):
        resposta, _ = cliente.put("key-%04d" % i, "x" * 30)
        assert resposta.timestamp == i + 1
    assert cliente.get("key-0999")[0].value == "x" * 30
    cliente.fechar()
    if os.name == "posix":
        lider.send_signal(signal.SIGINT)
        # Ao sair, o servidor espera um console pausado por PRAZO_SAIDA (1 s) e sai sem ele;
        # PRAZO (15 s) é mais de 10 vezes isso. Um servidor que esperasse o console sairia nunca.
        assert lider.wait(PRAZO) == 0


@so_posix
def test_linhas_na_fila_saem_antes_de_um_fim_limpo(cluster):
    """[5b] Console pausado com linhas na fila: no Ctrl+C, o servidor espera o console voltar
    (até ~1 s) e escreve todas as linhas antes de sair."""
    lider, porta = lider_com_console_num_pipe(cluster)
    # 2 000 linhas de GET de ~100 bytes: o pipe (64 KiB) enche, a thread do console fica presa
    # no print e o resto espera na fila. Cada resposta sai depois de a linha entrar na fila.
    keys = ["key-%04d" % i for i in range(2000)]
    with socket.create_connection(("127.0.0.1", porta), timeout=PRAZO) as sock, \
            sock.makefile("rb") as respostas:
        sock.sendall(b"".join(linha_json({"tipo": "GET", "key": key, "timestamp": 0})
                              for key in keys))
        for _ in keys:
            assert respostas.readline()
    lido = []

    def ler():
        # O console segue pausado por um terço do tempo que o servidor espera por ele ao
        # sair: quem sai sem esperar já saiu, com as linhas da fila perdidas.
        time.sleep(Servidor.PRAZO_SAIDA / 3)
        lido.append(lider.stdout.read())
    leitor = threading.Thread(target=ler, daemon=True)
    lider.send_signal(signal.SIGINT)
    leitor.start()
    assert lider.wait(PRAZO) == 0
    leitor.join(PRAZO)
    linhas = lido[0].decode("utf-8").splitlines()
    assert [linha.split(" GET key:")[1].split(" ")[0] for linha in linhas] == keys


def test_seguidor_com_porta_do_lider_errada_diz_no_erro_do_put(cluster):
    """[5a][5c] Seguidor com a porta do líder digitada errado (ou o líder fora do ar): o ERRO
    de cada PUT por ele diz o líder que ele não alcança e que o PUT não foi feito; uma linha
    curta em stderr por PUT, nada mais no console, e o GET segue a regra da seção 5f."""
    errada = cluster.porta_morta()
    proc = cluster.seguidor(errada)
    for vez in (1, 2):
        resposta = trocar(proc.porta, {"tipo": "PUT", "key": "k", "value": "v"})
        assert resposta == {"tipo": "ERRO", "value": "o líder 127.0.0.1:%d está fora do ar; o "
                            "PUT não foi feito" % errada}
        proc.sincronizar()   # o aviso veio antes desta linha, pela mesma fila do console
        assert proc.erro().splitlines() == ["Líder 127.0.0.1:%d está fora do ar; o PUT não foi "
                                            "feito (key:k)." % errada] * vez
    assert get_direto(proc.porta, "k") == {"tipo": "GET_OK", "key": "k", "value": None,
                                           "timestamp": 0}
    assert [linha for linha in proc.linhas() if " GET " not in linha] == \
        ["Encaminhando PUT key:k value:v"] * 2


@pytest.mark.parametrize("detalhes", [False, True])
def test_seguidor_sem_lider_fica_calado_e_com_detalhes_diz_uma_vez(cluster, monkeypatch, capfd,
                                                                   detalhes):
    """[5a] Um seguidor que não alcança o líder tenta de novo sem escrever nada (enunciado,
    seção 6), por quantas tentativas forem; com --detalhes, diz uma vez, com o endereço."""
    monkeypatch.setattr(Servidor, "INTERVALO_REJOIN", 0.01)
    errada = cluster.porta_morta()
    ouvinte = Servidor.abrir_porta("127.0.0.1", 0)   # a porta dele, já aberta
    servidor = Servidor("127.0.0.1", ouvinte.getsockname()[1], "127.0.0.1", errada,
                        detalhes=detalhes)
    tentativas = []
    conectar = socket.create_connection

    def contar(*args, **kwargs):
        tentativas.append(1)
        return conectar(*args, **kwargs)
    monkeypatch.setattr(socket, "create_connection", contar)
    servidor.abrir(ouvinte)
    try:
        esperar(lambda: len(tentativas) >= 50, motivo="50 tentativas de alcançar o líder")
        servidor.fechar()   # escreve o que ainda estava na fila do console
        erro = capfd.readouterr().err
        if detalhes:
            assert erro.count("Detalhe: sem contato com o líder 127.0.0.1:%d (" % errada) == 1
            assert len(erro.splitlines()) == 1, erro
        else:
            assert erro == ""
    finally:
        servidor.fechar()


# ------------------------------------------- 5. o PUT espera o que for preciso

# Lento (~7 s): seis PUTs em fila atrás de um seguidor que aplica um por segundo.
def test_put_em_fila_atras_do_seguidor_lento_espera_sem_teto(cluster):
    """[5e] Seis PUTs em fila atrás de um seguidor que aplica um por segundo, com prazo de
    replicação de 3 s: o último espera o dobro do prazo e recebe PUT_OK, pelo líder ou por um
    seguidor; o lento confirma sempre, então nunca é retirado, e nenhum ERRO."""
    (lider, _, lento), portas = cluster.tres(
        atraso=1, extras_lider=("--prazo-replicacao", str(PRAZO_CURTO)))
    resultados = []

    def put(i):
        inicio = time.monotonic()
        resposta = trocar(portas[i % 2], {"tipo": "PUT", "key": "k%d" % i, "value": "v"},
                          prazo=PRAZO + 10)
        resultados.append((resposta, time.monotonic() - inicio))
    threads = [threading.Thread(target=put, args=(i,), daemon=True) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(PRAZO + 10)
    assert sorted(r["timestamp"] for r, _ in resultados if r["tipo"] == "PUT_OK") == \
        [1, 2, 3, 4, 5, 6], resultados
    assert max(demora for _, demora in resultados) > 2 * PRAZO_CURTO - 1
    lider.sincronizar()
    assert lider.erro() == "" and lider.unioes(portas[2]) == 1
    assert len([l for l in lento.linhas_agora() if l.startswith("REPLICATION")]) == 6


def test_key_longa_nao_tira_o_seguidor_do_conjunto(cluster):
    """[5d][5e] O REPLICATION_OK leva a key: uma key de 200 KiB (legal) chega ao líder em
    vários pedaços, e o seguidor segue unido, PUT depois de PUT."""
    (lider, _, _), portas = cluster.tres()
    key = "k" * (200 * 1024)
    for i in range(3):
        resposta = trocar(portas[0], {"tipo": "PUT", "key": key, "value": "v%d" % i})
        assert resposta["tipo"] == "PUT_OK", resposta
        for porta in portas[1:]:
            lido = get_direto(porta, key, resposta["timestamp"])
            assert (lido["tipo"], lido["value"]) == ("GET_OK", "v%d" % i)
    lider.sincronizar()
    assert lider.erro() == ""
    assert [lider.unioes(p) for p in portas[1:]] == [1, 1]


# Lento (~4 s): espera o prazo de replicação (encurtado para 3 s) passar uma vez.
def test_envio_preso_num_seguidor_que_para_de_ler_sai_no_prazo(cluster):
    """[5e] Um seguidor falso confirma o snapshot e para de ler: a REPLICATION de um value de
    15 MiB não cabe nos buffers do sistema e o envio, sob a trava de PUT, fica preso. Ele sai
    no prazo de replicação: o PUT termina com PUT_OK, o seguidor é retirado com um aviso e o
    PUT seguinte não espera."""
    lider = cluster.lider("--prazo-replicacao", str(PRAZO_CURTO))
    porta = lider.porta
    with SeguidorFalso(porta, "127.0.0.1:2") as falso:
        assert falso.resposta()["tipo"] == "JOIN_OK"
        falso.confirmar()
        esperar_unido(lider, 2)
        inicio = time.monotonic()
        resposta = trocar(porta, {"tipo": "PUT", "key": "k", "value": "x" * (15 * MIB)})
        demora = time.monotonic() - inicio
        assert (resposta["tipo"], resposta["timestamp"]) == ("PUT_OK", 1)
        assert PRAZO_CURTO - 1 < demora < PRAZO_CURTO + PRAZO / 3, demora
        inicio = time.monotonic()
        assert trocar(porta, {"tipo": "PUT", "key": "k", "value": "v"})["tipo"] == "PUT_OK"
        assert time.monotonic() - inicio < SEM_ESPERA, "o PUT esperou o seguidor retirado"
        esperar(lambda: "retirado" in lider.erro(), motivo="o líder avisar a retirada")
        assert lider.erro().startswith("Seguidor 127.0.0.1:2 retirado: ")
    lider.exigir_vivo()
