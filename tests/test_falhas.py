"""Falhas em volta do caminho feliz: nenhum par, cliente, pausa ou erro de digitação trava,
faz dar voltas ou engana o cluster. Processos reais; pares falsos falam o protocolo direto.

Os testes lentos têm logo acima um comentário "# Lento (~N s): por quê".
"""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from conftest import (PRAZO, RAIZ, Processo, aceita_conexao, enderecos, esperar,
                      esperar_unido, porta_livre, trocar)
from Cliente import Cliente
from Mensagem import Mensagem
from Servidor import Servidor

MIB = 1024 * 1024
# O prazo de replicação dos testes (--prazo-replicacao): o mecanismo é o mesmo do padrão, 40 s.
PRAZO_CURTO = 3

so_posix = pytest.mark.skipif(os.name != "posix", reason="pausa processos com SIGSTOP")


def linha(objeto):
    return json.dumps(objeto, ensure_ascii=False).encode("utf-8") + b"\n"


def join_falso(porta_lider, origem, ler=True, confirmar=False, dados=None, timestamp=None):
    """Um seguidor falso: manda JOIN e, se pedido, lê o JOIN_OK e o confirma."""
    sock = socket.create_connection(("127.0.0.1", porta_lider), timeout=PRAZO)
    pedido = {"tipo": "JOIN", "origem": origem}
    if dados is not None:
        pedido["dados"] = dados
    if timestamp is not None:
        pedido["timestamp"] = timestamp
    sock.sendall(linha(pedido))
    resposta = None
    if ler:
        resposta = json.loads(sock.makefile("rb").readline())
        if confirmar and resposta["tipo"] == "JOIN_OK":
            sock.sendall(linha({"tipo": "REPLICATION_OK", "timestamp": resposta["timestamp"]}))
    return sock, resposta


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


def get_direto(porta, key, timestamp=0):
    return trocar(porta, {"tipo": "GET", "key": key, "timestamp": timestamp})


# ------------------------------------------------- 1. JOINs falsos e pausas


def test_join_mudo_nao_segura_puts(cluster, cliente):
    """[5c][5e] JOIN que não lê o snapshot, ou lê e não confirma: não está unido, PUTs seguem."""
    (lider, _, _), portas = cluster.tres()
    cliente.inicializar(enderecos(portas))
    # 18 MiB guardados: um snapshot que não cabe nos buffers do socket.
    for i in range(3):
        assert cliente.put("grande%d" % i, "x" * (6 * MIB))[0].tipo == Mensagem.PUT_OK
    mudos = [join_falso(portas[0], "127.0.0.1:%d" % porta_livre(), ler=False)[0],
             join_falso(portas[0], "127.0.0.1:%d" % porta_livre(), ler=True)[0]]
    try:
        for i in range(5):
            inicio = time.monotonic()
            resposta, _ = cliente.put("k", "v%d" % i, servidor=("127.0.0.1", portas[0]))
            assert resposta.tipo == Mensagem.PUT_OK
            assert time.monotonic() - inicio < PRAZO / 3, "o PUT esperou o JOIN falso"
    finally:
        for sock in mudos:
            sock.close()
    lider.exigir_vivo()


def test_join_com_endereco_de_seguidor_vivo_nao_libera_put_antes_da_hora(cluster, cliente):
    """[5e] Um JOIN falso com a origem de um seguidor vivo não o tira do conjunto: o PUT_OK
    só sai depois que o seguidor de verdade (lento) aplicou a REPLICATION."""
    (lider, _, lento), portas = cluster.tres(atraso=2)
    cliente.inicializar(enderecos(portas))
    thread, resultado = put_cronometrado(cliente, "k", "v", ("127.0.0.1", portas[0]))
    esperar(lambda: "Cliente" in "".join(lider.linhas()), motivo="o líder receber o PUT")
    sock, resposta = join_falso(portas[0], "127.0.0.1:%d" % portas[2], ler=True)
    try:
        assert resposta["tipo"] == "JOIN_OK"
        thread.join(PRAZO)
        assert resultado, "o PUT não terminou"
        # O seguidor lento já tem o valor quando o PUT_OK chega ao cliente.
        assert get_direto(portas[2], "k", 1) == {"tipo": "GET_OK", "key": "k", "value": "v",
                                                 "timestamp": 1}
        assert "REPLICATION key:k value:v ts:1" in lento.linhas_agora()
    finally:
        sock.close()


# Lento (~5 s): espera o prazo de replicação (encurtado para 3 s) passar uma vez.
@so_posix
def test_seguidor_pausado_e_par_que_nao_confirma_sao_retirados_e_voltam(cluster, cliente):
    """[5e] Seguidor pausado (SIGSTOP) e seguidor falso que nunca confirma: o PUT termina
    no prazo de replicação, os seguintes não esperam, e o pausado volta com tudo."""
    (lider, _, pausado), portas = cluster.tres(
        extras_lider=("--prazo-replicacao", str(PRAZO_CURTO)))
    unioes = lider.unioes(portas[2])
    cliente.inicializar(enderecos(portas))
    falso, resposta = join_falso(portas[0], "127.0.0.1:%d" % porta_livre(), confirmar=True)
    assert resposta["tipo"] == "JOIN_OK"
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
            assert time.monotonic() - inicio < PRAZO / 3
        esperar(lambda: len(lider.erro().splitlines()) == 2, motivo="o líder avisar duas vezes")
        erros = lider.erro().splitlines()
        assert all(e.startswith("Seguidor 127.0.0.1:") and "retirado" in e for e in erros), erros
    finally:
        pausado.popen.send_signal(signal.SIGCONT)
        falso.close()
    # O líder o pôs de novo no conjunto (não basta ele responder um GET: isso ele faz sempre).
    esperar_unido(lider, portas[2], antes=unioes)
    assert get_direto(portas[2], "k", 6) == {"tipo": "GET_OK", "key": "k", "value": "v6",
                                             "timestamp": 6}


# -------------------------------------------- 2. configuração que daria voltas


@pytest.mark.parametrize("ip, ip_lider", [("0.0.0.0", "127.0.0.1"), ("127.0.0.1", "localhost"),
                                          ("localhost", "127.0.0.1")])
def test_lider_reconhece_o_proprio_endereco_escrito_de_outro_jeito(tmp_path, ip, ip_lider):
    """[5a][5c] Escuta em 0.0.0.0, ou localhost contra 127.0.0.1: é o líder; o PUT é gravado."""
    porta = porta_livre()
    proc = Processo(["Servidor.py", ip, str(porta), ip_lider, str(porta)], str(tmp_path), "s")
    try:
        esperar(lambda: proc.exigir_vivo() or aceita_conexao(porta), motivo="abrir a porta")
        resposta = trocar(porta, {"tipo": "PUT", "key": "k", "value": "v"})
        assert (resposta["tipo"], resposta["timestamp"]) == ("PUT_OK", 1), resposta
        assert proc.erro() == ""
    finally:
        proc.terminar()


def test_dois_servidores_que_se_apontam_como_lider_nao_dao_voltas(tmp_path):
    """[5c] A diz que B é o líder e B diz que A é: o PUT recebe ERRO, cada um avisa uma vez
    em stderr, e os dois seguem respondendo."""
    pa, pb = porta_livre(), porta_livre()
    a = Processo(["Servidor.py", "127.0.0.1", str(pa), "127.0.0.1", str(pb)], str(tmp_path), "a")
    b = Processo(["Servidor.py", "127.0.0.1", str(pb), "127.0.0.1", str(pa)], str(tmp_path), "b")
    try:
        for porta, proc in ((pa, a), (pb, b)):
            esperar(lambda: proc.exigir_vivo() or aceita_conexao(porta), motivo="abrir a porta")
        for _ in range(3):
            resposta = trocar(pa, {"tipo": "PUT", "key": "k", "value": "v"})
            assert resposta["tipo"] == "ERRO" and "não é o líder" in resposta["value"], resposta
        assert get_direto(pb, "k") == {"tipo": "GET_OK", "key": "k", "value": None,
                                       "timestamp": 0}
        b.porta = pb
        b.sincronizar()   # os avisos vieram antes desta linha, pela mesma fila do console
        assert b.erro().count("PUT encaminhado a este servidor, que não é o líder") == 1
        # Cada um diz uma vez que o JOIN foi recusado (o outro é seguidor).
        for proc in (a, b):
            esperar(lambda: "Canal com o líder" in proc.erro(), motivo="%s avisar" % proc.nome)
            assert proc.erro().count("Canal com o líder") == 1
    finally:
        a.terminar()
        b.terminar()


# ----------------------------------------------------- 3. o cliente


class ServidorQueCai:
    """Um 'servidor' que passa o PUT ao líder, espera a resposta dele e cai sem responder ao
    cliente: o caso de um seguidor que morre no meio de um PUT."""

    def __init__(self, porta_lider):
        self.porta_lider = porta_lider
        self.atingido = False
        self.fechando = False
        self.ouvinte = socket.create_server(("127.0.0.1", 0))
        self.porta = self.ouvinte.getsockname()[1]
        self.thread = threading.Thread(target=self.atender, daemon=True)
        self.thread.start()

    def atender(self):
        sock, _ = self.ouvinte.accept()
        if self.fechando:
            sock.close()  # a conexão de fechar(): ninguém o sorteou
            return
        self.atingido = True
        with sock, socket.create_connection(("127.0.0.1", self.porta_lider), PRAZO) as lider:
            lider.sendall(sock.makefile("rb").readline())
            lider.makefile("rb").readline()   # o líder gravou e respondeu

    def fechar(self):
        # Um accept() bloqueado não acorda quando o socket fecha: uma conexão o acorda.
        self.fechando = True
        if not self.atingido:
            socket.create_connection(("127.0.0.1", self.porta), PRAZO).close()
        self.thread.join(PRAZO)
        self.ouvinte.close()


def test_put_cujo_servidor_cai_no_meio_e_refeito_sem_gravar_duas_vezes(cluster, cliente):
    """[4b] O servidor cai depois que o líder gravou: o cliente repete o PUT (mesmo id) em
    outro servidor e o líder o reconhece: uma escrita só."""
    _, portas = cluster.tres()
    # Só o que cai: o cliente não sabe se o PUT foi feito e diz isso.
    que_cai = ServidorQueCai(portas[0])
    cliente.inicializar(enderecos([que_cai.porta]))
    with pytest.raises(ConnectionError, match="pode ou não ter sido feito"):
        cliente.put("k", "v0")
    que_cai.fechar()
    # O que cai e o líder, sorteados: quando o que cai é o primeiro, o PUT é repetido no líder.
    escritas, repetidos = 1, 0
    while repetidos < 3:
        assert escritas < 40, "o sorteio nunca começou pelo servidor que cai"
        que_cai = ServidorQueCai(portas[0])
        cliente.inicializar(enderecos([que_cai.porta, portas[0]]))
        resposta, servidor = cliente.put("k", "v%d" % escritas)
        que_cai.fechar()
        escritas += 1
        repetidos += que_cai.atingido
        # Cada PUT digitado grava uma vez só: o ts segue o número de PUTs.
        assert (resposta.tipo, resposta.timestamp, servidor) == \
            (Mensagem.PUT_OK, escritas, ("127.0.0.1", portas[0])), resposta
    assert get_direto(portas[1], "k") == {"tipo": "GET_OK", "key": "k",
                                          "value": "v%d" % (escritas - 1), "timestamp": escritas}


def test_put_repetido_com_o_mesmo_id_grava_uma_vez(cluster):
    """[5c] O líder reconhece o id de um PUT repetido (por ele ou por um seguidor): mesmo ts."""
    (lider, _, _), portas = cluster.tres()
    pedido = {"tipo": "PUT", "key": "k", "value": "v", "id": "abc123"}
    respostas = [trocar(porta, pedido) for porta in (portas[0], portas[1], portas[0])]
    assert respostas == [{"tipo": "PUT_OK", "key": "k", "value": "v", "timestamp": 1,
                          "id": "abc123"}] * 3
    assert trocar(portas[0], {"tipo": "PUT", "key": "k", "value": "w"})["timestamp"] == 2


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
        entrada = "INIT\n\n%d\n\n%d\n\n%d\n" % (portas[2], portas[0], portas[2])
        entrada += "GET\nk\n" * 4
        proc = cluster.cliente(entrada)
        proc.popen.wait(4 * (Cliente.PRAZO_GET + PRAZO))
        saida = [l for l in proc.saida().splitlines() if "GET key:" in l]
        assert len(saida) == 4 and all(
            l.endswith("obtido do servidor 127.0.0.1:%d, meu timestamp %d e do servidor 1"
                       % (portas[0], 0 if i == 0 else 1)) for i, l in enumerate(saida)), saida
        assert proc.erro() == ""
    finally:
        pausado.popen.send_signal(signal.SIGCONT)


def test_porta_e_ip_invalidos_sao_perguntados_de_novo_em_portugues(cluster, tmp_path):
    """[4a][5a] "²", "１" e " 10 097" não são portas; um IP que não resolve também é dito em
    português; tudo perguntado de novo, sem traceback; linha vazia no menu recebe a dica."""
    proc = cluster.cliente("\nINIT\n\n²\n１\n10 097\n\n\n\n\n\n")
    proc.popen.wait(PRAZO)
    assert proc.erro().splitlines() == ["Opção inválida: digite INIT, PUT ou GET."] + \
        ["Porta inválida: use um número de 1 a 65535."] * 3
    porta = porta_livre()
    entrada = "ip.que.nao.existe.invalid\n\n²\n%d\n300.1.2.3\n\n１\n%d\n" % (porta, porta)
    servidor = Processo(["Servidor.py"], str(tmp_path), "interativo", entrada)
    cluster.pilha.callback(servidor.terminar)
    esperar(lambda: servidor.exigir_vivo() or aceita_conexao(porta), motivo="abrir a porta")
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


def test_put_legal_de_16_mib_passa_por_um_seguidor(cluster):
    """[5c] Um PUT de exatamente 16 MiB é legal por qualquer servidor: a origem que o
    seguidor acrescenta não conta."""
    _, portas = cluster.tres()
    prefixo, sufixo = b'{"tipo":"PUT","key":"k","value":"', b'"}\n'
    valor = "y" * (Mensagem.LIMITE_LINHA - len(prefixo) - len(sufixo))
    resposta = trocar(portas[1], prefixo + valor.encode() + sufixo, prazo=2 * PRAZO)
    assert (resposta["tipo"], resposta["timestamp"]) == ("PUT_OK", 1), str(resposta)[:200]
    # Um byte a mais, direto de um cliente, é recusado.
    resposta = trocar(portas[0], prefixo + valor.encode() + b"z" + sufixo, prazo=2 * PRAZO)
    assert resposta["tipo"] == "ERRO"


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
    proc = cluster.cliente("INIT\n\n%d\n\n%d\n\n%d\nGET\nk3\n" % tuple(portas))
    proc.popen.wait(PRAZO)
    assert [l[l.index("GET key:"):] for l in proc.saida().splitlines() if "GET key:" in l] == \
        ["GET key: k3 value: %s obtido do servidor 127.0.0.1:%d, meu timestamp 0 e do "
         "servidor 2" % (mostrado, porta) for porta in portas
         if ("servidor 127.0.0.1:%d," % porta) in proc.saida()]


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
@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="lê a CPU em /proc (Linux)")
def test_servidor_parado_quase_nao_gasta_cpu_e_a_linha_sai_na_hora(cluster):
    """[5b][5f] Três servidores parados gastam no máximo uns 3 ms de CPU por segundo cada; e
    depois do silêncio, a linha de um GET está no console de cada um em poucos milissegundos
    (um quadro do vídeo nunca mostra a resposta no cliente antes da linha no servidor)."""
    procs, portas = cluster.tres()
    antes = [cpu_em_ns(proc.popen.pid) for proc in procs]
    inicio = time.monotonic()
    esperar(lambda: time.monotonic() - inicio > 1.5, motivo="1,5 s de silêncio")
    segundos = time.monotonic() - inicio
    gastos = [(cpu_em_ns(proc.popen.pid) - a) / 1e6 / segundos for proc, a in zip(procs, antes)]
    assert max(gastos) <= 3.0, "ms de CPU por segundo, parado: %s" % gastos
    atrasos = []
    for proc, porta in zip(procs, portas):
        get_direto(porta, "silencio")
        respondido = time.monotonic()
        # Sonda de 1 ms (a do esperar, 20 ms, seria maior que o que se mede aqui).
        while "GET key:silencio " not in proc.saida():
            assert time.monotonic() - respondido < PRAZO, "a linha do GET não saiu"
            time.sleep(0.001)
        atrasos.append(time.monotonic() - respondido)
    assert max(atrasos) < 0.05, "a linha saiu %s s depois da resposta" % atrasos


def test_console_que_nao_anda_nao_para_o_cluster(tmp_path):
    """[5b] O stdout do líder num pipe que ninguém lê (um console pausado): PUTs e GETs
    seguem, e o Ctrl+C ainda encerra em pouco tempo."""
    porta = porta_livre()
    ambiente = dict(os.environ, PYTHONIOENCODING="utf-8")
    lider = subprocess.Popen([sys.executable, "-u", "Servidor.py", "127.0.0.1", str(porta),
                              "127.0.0.1", str(porta)], cwd=RAIZ, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, env=ambiente)
    try:
        esperar(lambda: aceita_conexao(porta), motivo="o líder abrir a porta")
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
            assert lider.wait(5 * Servidor.PRAZO_SAIDA) == 0
    finally:
        lider.kill()
        lider.wait(PRAZO)
        lider.stdout.close()


def test_seguidor_com_porta_do_lider_errada_diz_no_erro_do_put(cluster):
    """[5a][5c] Seguidor com a porta do líder digitada errado: o ERRO do primeiro PUT por
    ele já diz o líder que ele não alcança; o console não ganha outra linha, e o GET segue a
    regra da seção 5f."""
    porta, errada = porta_livre(), porta_livre()
    proc = cluster.servidor(porta, errada)
    resposta = trocar(porta, {"tipo": "PUT", "key": "k", "value": "v"})
    assert resposta == {"tipo": "ERRO", "value": "o líder 127.0.0.1:%d está fora do ar; o "
                        "PUT não foi feito" % errada}
    assert get_direto(porta, "k") == {"tipo": "GET_OK", "key": "k", "value": None,
                                      "timestamp": 0}
    proc.sincronizar()
    assert proc.erro().splitlines() == ["Líder 127.0.0.1:%d está fora do ar; o PUT não foi "
                                        "feito (key:k)." % errada]
    assert proc.linhas()[0] == "Encaminhando PUT key:k value:v"


# Lento (~3 s): o procedimento do professor, com os seguidores esperando o líder por 2 s.
def test_seguidores_antes_do_lider_nao_escrevem_nada_fora_da_secao_6(cluster):
    """[5a] Seguidores que sobem antes do líder (a pessoa digita as quatro respostas de cada
    console) ficam calados: nem aviso em stderr, só as linhas da seção 6 depois."""
    portas = [porta_livre() for _ in range(3)]
    seguidores = [cluster.servidor(porta, portas[0]) for porta in portas[1:]]
    inicio = time.monotonic()
    while time.monotonic() - inicio < 2.0:   # várias tentativas de alcançar o líder
        for proc in seguidores:
            proc.exigir_vivo()
            assert proc.erro() == "" and proc.saida() == ""
        time.sleep(0.1)
    lider = cluster.servidor(portas[0], portas[0])
    for porta in portas[1:]:
        esperar_unido(lider, porta)
    resposta = trocar(portas[1], {"tipo": "PUT", "key": "k", "value": "v"})
    assert resposta["timestamp"] == 1
    assert seguidores[0].linhas_agora() == ["Encaminhando PUT key:k value:v",
                                            "REPLICATION key:k value:v ts:1"]
    assert seguidores[1].linhas_agora() == ["REPLICATION key:k value:v ts:1"]
    for proc in seguidores + [lider]:
        assert proc.erro() == ""


@pytest.mark.parametrize("detalhes", [False, True])
def test_seguidor_sem_lider_fica_calado_e_com_detalhes_diz_uma_vez(monkeypatch, capfd,
                                                                   detalhes):
    """[5a] Um seguidor que não alcança o líder tenta de novo sem escrever nada (enunciado,
    seção 6), por quantas tentativas forem; com --detalhes, diz uma vez, com o endereço."""
    monkeypatch.setattr(Servidor, "INTERVALO_REJOIN", 0.01)
    porta, errada = porta_livre(), porta_livre()
    servidor = Servidor("127.0.0.1", porta, "127.0.0.1", errada, detalhes=detalhes)
    tentativas = []
    conectar = socket.create_connection

    def contar(*args, **kwargs):
        tentativas.append(1)
        return conectar(*args, **kwargs)
    monkeypatch.setattr(socket, "create_connection", contar)
    servidor.abrir()
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


# ------------------------------------------- 4. o PUT espera o que for preciso

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


def test_id_repetido_nao_grava_de_novo_e_id_com_outro_pedido_recebe_erro(cluster):
    """[5c] O mesmo PUT (mesmo id) repetido por outro servidor recebe o ts do primeiro e não
    grava nada; o mesmo id com outra key ou outro value recebe ERRO e não grava nada."""
    _, portas = cluster.tres()
    put = {"tipo": "PUT", "key": "k", "value": "v", "id": "pedido-1"}
    assert trocar(portas[0], put)["timestamp"] == 1
    assert trocar(portas[1], put) == dict(put, tipo="PUT_OK", timestamp=1)
    for outro in (dict(put, value="w"), dict(put, key="j"), dict(put, value=None)):
        resposta = trocar(portas[2], outro)
        assert resposta["tipo"] == "ERRO" and "já foi usado" in resposta["value"], resposta
    for porta in portas:
        assert get_direto(porta, "k", 1) == {"tipo": "GET_OK", "key": "k", "value": "v",
                                             "timestamp": 1}
        assert get_direto(porta, "j") == {"tipo": "GET_OK", "key": "j", "value": None,
                                          "timestamp": 0}
    assert trocar(portas[0], {"tipo": "PUT", "key": "n", "value": "v"})["timestamp"] == 2


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
    porta = porta_livre()
    lider = cluster.servidor(porta, porta, "--prazo-replicacao", str(PRAZO_CURTO))
    porta_falsa = porta_livre()
    falso, resposta = join_falso(porta, "127.0.0.1:%d" % porta_falsa, confirmar=True)
    try:
        assert resposta["tipo"] == "JOIN_OK"
        esperar_unido(lider, porta_falsa)
        inicio = time.monotonic()
        resposta = trocar(porta, {"tipo": "PUT", "key": "k", "value": "x" * (15 * MIB)})
        demora = time.monotonic() - inicio
        assert (resposta["tipo"], resposta["timestamp"]) == ("PUT_OK", 1)
        assert PRAZO_CURTO - 1 < demora < PRAZO_CURTO + PRAZO / 3, demora
        inicio = time.monotonic()
        assert trocar(porta, {"tipo": "PUT", "key": "k", "value": "v"})["tipo"] == "PUT_OK"
        assert time.monotonic() - inicio < PRAZO / 3
        esperar(lambda: "retirado" in lider.erro(), motivo="o líder avisar a retirada")
        assert lider.erro().startswith("Seguidor 127.0.0.1:%d retirado: " % porta_falsa)
    finally:
        falso.close()
    lider.exigir_vivo()
