"""Muitos clientes ao mesmo tempo (enunciado, seção 3): milhares de conexões sem nenhum erro
falso; no limite de descritores, o servidor fecha a conexão nova na hora, segue servindo as
que tem e volta a aceitar quando algumas fecham."""

import ast
import json
import os
import selectors
import socket
import time

import pytest

from conftest import RAIZ, Cliente, enderecos, esperar, trocar

try:
    import resource
except ImportError:   # Windows: não há RLIMIT_NOFILE (nem o limite de 1 024 do select)
    resource = None

so_posix = pytest.mark.skipif(resource is None, reason="muda RLIMIT_NOFILE (POSIX)")


def limite_de_descritores(quantos):
    """Para o preexec_fn de um processo filho: o limite de descritores abertos dele."""
    def antes():
        _, duro = resource.getrlimit(resource.RLIMIT_NOFILE)
        if duro != resource.RLIM_INFINITY:
            quantos_aqui = min(quantos, duro)
        else:
            quantos_aqui = quantos
        resource.setrlimit(resource.RLIMIT_NOFILE, (quantos_aqui, duro))
    return antes


def exigir_descritores(quantos):
    """Este processo (o teste) precisa abrir quantos descritores: sobe o limite ou pula."""
    mole, duro = resource.getrlimit(resource.RLIMIT_NOFILE)
    if duro != resource.RLIM_INFINITY and duro < quantos:
        pytest.skip("o sistema limita os descritores a %d (o teste precisa de %d)"
                    % (duro, quantos))
    if mole < quantos:
        resource.setrlimit(resource.RLIMIT_NOFILE, (quantos, duro))


def linha(objeto):
    return json.dumps(objeto).encode() + b"\n"


def conversar(porta, conversas, prazo=60.0):
    """Abre uma conexão por conversa, todas ao mesmo tempo, e só quando todas estão abertas
    manda, em cada uma, um pedido depois da resposta do anterior (um laço de eventos, não uma
    thread por conexão); todas ficam abertas até a última conversa terminar. Devolve as
    respostas de cada conversa; uma conexão que falhou termina a lista dela com None."""
    limite = time.monotonic() + prazo
    seletor = selectors.DefaultSelector()
    respostas = [[] for _ in conversas]
    socks = []
    try:
        for numero in range(len(conversas)):
            sock = socket.socket()
            socks.append(sock)
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", porta))
            seletor.register(sock, selectors.EVENT_WRITE, numero)
        while seletor.get_map() and time.monotonic() < limite:   # todas conectadas
            for chave, _ in seletor.select(timeout=1.0):
                seletor.unregister(chave.fileobj)
                erro = chave.fileobj.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if erro:
                    respostas[chave.data].append(None)
        pendentes = [list(pedidos) for pedidos in conversas]
        restos = [bytearray() for _ in conversas]
        for numero, sock in enumerate(socks):
            if not respostas[numero]:
                sock.sendall(linha(pendentes[numero].pop(0)))
                seletor.register(sock, selectors.EVENT_READ, numero)
        while seletor.get_map() and time.monotonic() < limite:
            for chave, _ in seletor.select(timeout=1.0):
                sock, numero = chave.fileobj, chave.data
                try:
                    dados = sock.recv(65536)
                    if not dados:
                        raise ConnectionError("o servidor fechou a conexão")
                    restos[numero] += dados
                    while b"\n" in restos[numero]:
                        fim = restos[numero].index(b"\n")
                        respostas[numero].append(json.loads(bytes(restos[numero][:fim])))
                        del restos[numero][:fim + 1]
                        if pendentes[numero]:
                            sock.sendall(linha(pendentes[numero].pop(0)))
                        else:
                            seletor.unregister(sock)
                except OSError:
                    respostas[numero].append(None)
                    seletor.unregister(sock)
        for chave in seletor.get_map().values():
            respostas[chave.data].append(None)   # sem resposta no prazo
    finally:
        seletor.close()
        for sock in socks:
            sock.close()
    return respostas


# Lento (~6 s): 4 000 PUTs e 2 000 GETs por 2 000 conexões a um seguidor.
@so_posix
def test_2000_conexoes_num_seguidor_recebem_cada_uma_a_sua_resposta(cluster):
    """[5b] 2 000 clientes abrem conexão no mesmo seguidor ao mesmo tempo, e cada um faz PUT,
    PUT e GET da sua key: todos recebem a resposta certa (os PUTs encaminhados ao líder, que
    está no ar), nenhum ERRO, e nenhum servidor escreve linha de erro."""
    conexoes = 2000
    exigir_descritores(conexoes + 200)
    procs, portas = cluster.tres(antes=limite_de_descritores(3 * conexoes + 200))
    conversas = [[{"tipo": "PUT", "key": "k%d" % n, "value": "1"},
                  {"tipo": "PUT", "key": "k%d" % n, "value": "2"},
                  {"tipo": "GET", "key": "k%d" % n, "timestamp": 0}] for n in range(conexoes)]
    respostas = conversar(portas[1], conversas)
    erradas = []
    for n, conversa in enumerate(respostas):
        primeira, segunda, leitura = (conversa + [None, None, None])[:3]
        certas = (primeira and primeira["tipo"] == "PUT_OK" and segunda and
                  segunda["tipo"] == "PUT_OK" and segunda["timestamp"] > primeira["timestamp"]
                  and leitura == {"tipo": "GET_OK", "key": "k%d" % n, "value": "2",
                                  "timestamp": segunda["timestamp"]})
        if not certas:
            erradas.append((n, primeira, segunda, leitura))
    assert erradas == [], "%d conversas erradas; as primeiras: %r" % (len(erradas), erradas[:3])
    for proc in procs:
        assert proc.erro() == "", proc.erro()[:2000]


def conectar_e_pedir(porta, prazo=5.0):
    """Uma conexão nova com um GET: (socket, resposta); resposta None se o servidor fechou a
    conexão sem responder. Um servidor que não aceita deixa a conexão na fila e o GET sem
    resposta: socket.timeout no prazo (uns milissegundos bastam; o prazo é 1 000 vezes isso)."""
    sock = socket.create_connection(("127.0.0.1", porta), timeout=prazo)
    try:
        sock.sendall(linha({"tipo": "GET", "key": "k", "timestamp": 0}))
        resposta = sock.makefile("rb").readline()
    except ConnectionResetError:
        resposta = b""
    except socket.timeout:
        sock.close()
        raise
    return sock, json.loads(resposta) if resposta else None


def encher_de_conexoes(porta):
    """Abre conexões (cada uma com um GET respondido) até o servidor fechar uma nova na hora;
    devolve as abertas. Falha se ele deixar uma sem resposta (não aceitou nem fechou)."""
    abertas = []
    while True:
        sock, resposta = conectar_e_pedir(porta)
        if resposta is None:
            sock.close()
            return abertas
        assert resposta["tipo"] == "GET_OK", resposta
        abertas.append(sock)
        assert len(abertas) < 200, "o limite de descritores não chegou"


@so_posix
def test_servidor_no_limite_de_descritores_fecha_a_nova_e_serve_as_outras(cluster):
    """[5b] Um servidor com só 64 descritores: quando acabam, a conexão nova é fechada na hora
    (o cliente tenta outro servidor), as abertas seguem respondendo, e ele volta a aceitar
    quando algumas fecham."""
    lider = cluster.lider(antes=limite_de_descritores(64))
    porta = lider.porta
    abertas = encher_de_conexoes(porta)
    assert len(abertas) > 20
    abertas[0].sendall(linha({"tipo": "GET", "key": "k", "timestamp": 0}))
    assert json.loads(abertas[0].makefile("rb").readline())["tipo"] == "GET_OK"
    for sock in abertas[-5:]:
        sock.close()

    def aceita_de_novo():
        sock, resposta = conectar_e_pedir(porta)
        sock.close()
        return resposta is not None and resposta["tipo"] == "GET_OK"
    esperar(aceita_de_novo, motivo="o servidor aceitar de novo")
    for sock in abertas[:-5]:
        sock.close()
    lider.exigir_vivo()


@so_posix
def test_seguidor_sem_descritores_nao_diz_que_o_lider_caiu(cluster):
    """[5c] Um seguidor sem descritores livres não consegue abrir a conexão ao líder para
    encaminhar um PUT: a falha é dele, não do líder. Ele fecha a conexão do cliente (que
    tenta outro servidor) em vez de responder "o líder está fora do ar", e volta a encaminhar
    quando sobram descritores."""
    procs, portas = cluster.tres(antes=limite_de_descritores(64))
    abertas = encher_de_conexoes(portas[1])
    abertas[0].sendall(linha({"tipo": "PUT", "key": "k", "value": "v"}))
    try:
        resposta = abertas[0].makefile("rb").readline()
    except ConnectionResetError:
        resposta = b""
    assert resposta == b"" or "fora do ar" not in json.loads(resposta).get("value", ""), \
        resposta
    assert "fora do ar" not in procs[1].erro()
    for sock in abertas:
        sock.close()

    def encaminha():
        return trocar(portas[1], {"tipo": "PUT", "key": "k", "value": "v"})["tipo"] == "PUT_OK"
    esperar(encaminha, motivo="o seguidor encaminhar de novo")


@so_posix
def test_cliente_funciona_com_descritores_acima_de_1024(cluster):
    """[4b] [4c] O Cliente com as conexões em descritores acima de 1 023 (que select() não
    vê): PUT e GET funcionam como sempre."""
    exigir_descritores(1300)
    ocupados = [socket.socket() for _ in range(1100)]
    try:
        _, portas = cluster.tres()
        cliente = Cliente()
        cliente.inicializar(enderecos(portas))
        for numero in range(6):   # passa pelos três servidores, com conexões persistentes
            resposta, _ = cliente.put("k", "v%d" % numero)
            assert resposta.tipo == "PUT_OK", resposta
            resposta, _ = cliente.get("k")
            assert (resposta.tipo, resposta.value) == ("GET_OK", "v%d" % numero), resposta
        assert max(sock.fileno() for sock, _ in cliente.conexoes.values()) > 1024
        cliente.fechar()
    finally:
        for sock in ocupados:
            sock.close()


def test_nenhum_dos_tres_arquivos_usa_select():
    """select() não vê descritores acima de 1 023: com milhares de clientes, um servidor que o
    usa diz "o líder está fora do ar" sem estar. Nenhum dos três arquivos o importa."""
    for nome in ("Servidor.py", "Cliente.py", "Mensagem.py"):
        with open(os.path.join(RAIZ, nome), encoding="utf-8") as f:
            arvore = ast.parse(f.read())
        importados = {a.name.split(".")[0] for no in ast.walk(arvore)
                      if isinstance(no, ast.Import) for a in no.names}
        importados |= {(no.module or "").split(".")[0] for no in ast.walk(arvore)
                       if isinstance(no, ast.ImportFrom)}
        assert not importados & {"select", "selectors"}, nome
