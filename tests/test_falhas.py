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
# Um PUT que espera um seguidor que não confirma termina depois do prazo de replicação.
PRAZO_RETIRADA = Servidor.PRAZO_REPLICACAO + PRAZO

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


# Lento (~45 s): espera o prazo de replicação (40 s) passar uma vez.
@so_posix
def test_seguidor_pausado_e_par_que_nao_confirma_sao_retirados_e_voltam(cluster, cliente):
    """[5e] Seguidor pausado (SIGSTOP) e seguidor falso que nunca confirma: o PUT termina
    no prazo de replicação, os seguintes não esperam, e o pausado volta com tudo."""
    (lider, _, pausado), portas = cluster.tres()
    cliente.inicializar(enderecos(portas))
    falso, resposta = join_falso(portas[0], "127.0.0.1:%d" % porta_livre(), confirmar=True)
    assert resposta["tipo"] == "JOIN_OK"
    try:
        pausado.popen.send_signal(signal.SIGSTOP)
        inicio = time.monotonic()
        resposta, _ = cliente.put("k", "v1", servidor=("127.0.0.1", portas[0]))
        demora = time.monotonic() - inicio
        assert resposta.tipo == Mensagem.PUT_OK
        assert Servidor.PRAZO_REPLICACAO - 1 < demora < PRAZO_RETIRADA, demora
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
    esperar_unido(portas[2])
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
        assert get_direto(pb, "k")["tipo"] == "TRY_OTHER_SERVER_OR_LATER"
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


def test_seguidor_com_porta_do_lider_errada_avisa_uma_vez(cluster):
    """[5a] Seguidor com a porta do líder digitada errado: uma linha em stderr com o endereço
    que ele tenta, e TRY_OTHER_SERVER_OR_LATER a todo GET (não está unido)."""
    porta, errada = porta_livre(), porta_livre()
    proc = cluster.servidor(porta, errada)
    esperar(lambda: proc.erro() != "", prazo=Servidor.AVISO_SEM_LIDER + PRAZO,
            motivo="o seguidor avisar")
    assert proc.erro() == ("Sem contato com o líder 127.0.0.1:%d há 5 s; tentando de novo "
                           "(confira o IP e a porta do líder).\n" % errada)
    assert get_direto(porta, "k")["tipo"] == "TRY_OTHER_SERVER_OR_LATER"
