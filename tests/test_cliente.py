"""O cliente (enunciado, seção 4): INIT que começa do zero, a palavra final de um PUT e o prazo de
cada tentativa. Processos e sockets de verdade; um servidor falso faz a falha acontecer na hora
certa, sem mexer no sorteio do cliente: cada ordem possível é conferida quando acontece.
"""

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time

import pytest

from conftest import (AMBIENTE_FILHO, PRAZO, RAIZ, Cliente, Mensagem, enderecos, esperar,
                      esperar_unido, porta_livre, trocar)

# Perguntas do menu: tiradas do stdout para sobrar só as linhas do enunciado (seção 6).
PERGUNTAS = re.compile(r"^(?:INIT, PUT ou GET\? |IP do servidor \d \[[^\]]*\]: "
                       r"|Porta do servidor \d \[\d+\]: |Key: |Value: )+")
PODE_OU_NAO = "Nenhum servidor confirmou; o PUT pode ou não ter sido feito."
# Rodadas até o sorteio passar por cada ordem: a chance de faltar uma é de (2/3)^60 ou menos.
RODADAS = 60
ESPERA_FALSO = 0.1    # fatia do accept() do servidor falso, que confere se deve parar


def init_digitado(portas):
    """As respostas do INIT: Enter no IP (padrão 127.0.0.1) e a porta digitada."""
    return "INIT\n" + "".join("\n%d\n" % p for p in portas)


def get_direto(porta, key, timestamp=0):
    return trocar(porta, {"tipo": "GET", "key": key, "timestamp": timestamp})


class ServidorFalso:
    """Um 'servidor' numa porta livre que guarda cada pedido recebido e então, conforme o modo:
    "fecha" sem responder; "cala" (segura a conexão e nunca responde, como um processo
    pausado); "erro" (responde ERRO com o texto dado e fecha); "repassa" o pedido ao líder, espera a
    resposta dele, chama depois_do_lider() e fecha sem responder (o líder gravou e caiu)."""

    def __init__(self, modo, porta_lider=None, depois_do_lider=None, erro=None):
        self.modo = modo
        self.porta_lider = porta_lider
        self.depois_do_lider = depois_do_lider
        self.erro = erro
        self.pedidos = []          # cada linha recebida, como dict, na ordem
        self.abertas = []
        self.parar = threading.Event()
        self.ouvinte = socket.create_server(("127.0.0.1", 0))
        self.ouvinte.settimeout(ESPERA_FALSO)
        self.porta = self.ouvinte.getsockname()[1]
        self.thread = threading.Thread(target=self.atender, daemon=True)
        self.thread.start()

    def atender(self):
        while not self.parar.is_set():
            try:
                sock, _ = self.ouvinte.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            sock.settimeout(PRAZO)
            self.abertas.append(sock)
            try:
                linha = sock.makefile("rb").readline()
            except OSError:
                linha = b""
            if not linha:
                sock.close()
                continue
            self.pedidos.append(json.loads(linha))
            if self.modo == "erro":
                sock.sendall(json.dumps({"tipo": "ERRO", "value": self.erro}).encode() + b"\n")
                sock.close()
            elif self.modo == "repassa":
                with socket.create_connection(("127.0.0.1", self.porta_lider), PRAZO) as lider:
                    lider.sendall(linha)
                    lider.makefile("rb").readline()
                self.depois_do_lider()
                sock.close()
            elif self.modo == "fecha":
                sock.close()

    def fechar(self):
        self.parar.set()
        self.thread.join(PRAZO)
        self.ouvinte.close()
        for sock in self.abertas:
            sock.close()


class MenuAberto:
    """Cliente.py com o stdin aberto: a pessoa digita uma ação, espera a resposta, digita outra."""

    def __init__(self, cluster, nome, prefixo=()):
        self.caminho_saida = os.path.join(cluster.pasta, nome + ".out")
        self.caminho_erro = os.path.join(cluster.pasta, nome + ".err")
        with open(self.caminho_saida, "wb") as saida, open(self.caminho_erro, "wb") as erro:
            self.popen = subprocess.Popen(
                [sys.executable, "-u"] + list(prefixo) + ["Cliente.py"], cwd=RAIZ,
                stdin=subprocess.PIPE, stdout=saida, stderr=erro, env=AMBIENTE_FILHO)
        cluster.pilha.callback(self.encerrar)

    def digitar(self, texto):
        self.popen.stdin.write(texto.encode("utf-8"))
        self.popen.stdin.flush()

    def ler(self, caminho):
        with open(caminho, encoding="utf-8", errors="replace") as f:
            return f.read()

    def linhas(self):
        """As linhas do stdout sem as perguntas do menu: só as do enunciado, seção 6."""
        linhas = [PERGUNTAS.sub("", linha) for linha in self.ler(self.caminho_saida).splitlines()]
        return [linha for linha in linhas if linha]

    def erros(self):
        return self.ler(self.caminho_erro).splitlines()

    def esperar_respostas(self, quantas):
        """Espera o total de linhas (stdout do enunciado + stderr) chegar a quantas."""
        def chegaram():
            if self.popen.poll() is not None:
                pytest.fail("o cliente terminou (código %s)\nstdout:\n%s\nstderr:\n%s"
                            % (self.popen.returncode, self.ler(self.caminho_saida),
                               self.ler(self.caminho_erro)))
            return len(self.linhas()) + len(self.erros()) >= quantas
        esperar(chegaram, motivo="o cliente responder %d vezes" % quantas)

    def fim(self):
        """Fecha o stdin (EOF): o cliente sai limpo; devolve o código de saída."""
        self.popen.stdin.close()
        return self.popen.wait(PRAZO)

    def encerrar(self):
        if not self.popen.stdin.closed:
            try:
                self.popen.stdin.close()
            except OSError:
                pass  # o cliente já saiu: o pipe está quebrado
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait(PRAZO)


@pytest.fixture
def falsos(cluster):
    """Fábrica de servidores falsos, fechados no teardown do cluster."""
    def criar(modo, **opcoes):
        falso = ServidorFalso(modo, **opcoes)
        cluster.pilha.callback(falso.fechar)
        return falso
    return criar


def reiniciar_vazios(cluster, procs, portas):
    """Para os três servidores e sobe outros três, vazios (sem --dados), nas mesmas portas."""
    for proc in procs:
        proc.terminar()
    novos = [cluster.servidor(portas[0], portas[0])]
    novos += [cluster.servidor(porta, portas[0]) for porta in portas[1:]]
    for porta in portas:
        esperar_unido(porta)
    return novos


def lider_e_dois_seguidores(cluster):
    """(líder, porta do líder, [seguidor1, seguidor2], portas dos seguidores), todos unidos."""
    (lider, seg1, seg2), portas = cluster.tres()
    return lider, portas[0], [seg1, seg2], portas[1:]


def exigir_gravado(procs_seguidores, key, timestamp):
    """O PUT foi feito: cada seguidor aplicou a REPLICATION e guarda a key com esse ts (sem
    líder, ele responde TRY_OTHER a todo GET, mas com o seu ts da key)."""
    for seguidor in procs_seguidores:
        assert "REPLICATION key:%s value:v ts:%d" % (key, timestamp) in seguidor.linhas_agora()
        resposta = get_direto(seguidor.porta, key)
        assert (resposta["key"], resposta["timestamp"]) == (key, timestamp), resposta


# ------------------------------------------------------- 1. INIT começa do zero


def test_init_zera_timestamps_conexoes_e_falhas(cluster, cliente):
    """[4a] INIT de novo: os servidores digitados agora, todo timestamp em 0, nenhuma conexão
    nem falha lembrada."""
    porta = porta_livre()
    cluster.servidor(porta, porta)
    fora = porta_livre()
    cliente.inicializar(enderecos([porta, fora]))
    cliente.put("k", "v")
    cliente.get("k", servidor=("127.0.0.1", porta))
    with pytest.raises(ConnectionError):
        cliente.get("k", servidor=("127.0.0.1", fora))
    assert cliente.timestamps == {"k": 1} and cliente.conexoes and cliente.falhas
    sock = cliente.conexoes[("127.0.0.1", porta)][0]
    cliente.inicializar(enderecos([porta]))
    assert (cliente.servidores, cliente.timestamps, cliente.conexoes, cliente.falhas) == \
        ([("127.0.0.1", porta)], {}, {}, {})
    assert sock.fileno() == -1, "a conexão antiga ficou aberta"
    # Lista vazia é recusada e não apaga nada.
    cliente.put("k", "w")
    with pytest.raises(ValueError):
        cliente.inicializar([])
    assert cliente.servidores == [("127.0.0.1", porta)] and cliente.timestamps == {"k": 2}


def test_init_depois_dos_servidores_reiniciarem_vazios_biblioteca(cluster, cliente):
    """[4a][4c][5f] Servidores reiniciados vazios: o timestamp antigo dá TRY_OTHER para sempre;
    inicializar() de novo o zera e o GET volta a ler."""
    procs, portas = cluster.tres()
    cliente.inicializar(enderecos(portas))
    for i in range(3):
        cliente.put("k", "v%d" % i)
    assert cliente.timestamps == {"k": 3}
    reiniciar_vazios(cluster, procs, portas)
    assert trocar(portas[0], {"tipo": "PUT", "key": "k", "value": "novo"})["timestamp"] == 1
    for porta in portas:
        resposta, _ = cliente.get("k", servidor=("127.0.0.1", porta))
        assert (resposta.tipo, resposta.timestamp) == (Mensagem.TRY_OTHER_SERVER_OR_LATER, 1)
    assert cliente.timestamps == {"k": 3}
    cliente.inicializar(enderecos(portas))
    resposta, _ = cliente.get("k")
    assert (resposta.tipo, resposta.value, resposta.timestamp) == (Mensagem.GET_OK, "novo", 1)
    assert cliente.timestamps == {"k": 1}


def test_init_depois_dos_servidores_reiniciarem_vazios_pelo_menu(cluster):
    """[4a][4c] Pelo menu: depois que os três servidores reiniciaram vazios, o GET diz "meu
    timestamp 3 e do servidor 1" (TRY_OTHER); um novo INIT zera o timestamp e o GET lê."""
    procs, portas = cluster.tres()
    menu = MenuAberto(cluster, "cliente-init")
    menu.digitar(init_digitado(portas) + "PUT\nk\nv1\nPUT\nk\nv2\nPUT\nk\nv3\n")
    menu.esperar_respostas(3)
    reiniciar_vazios(cluster, procs, portas)
    assert trocar(portas[0], {"tipo": "PUT", "key": "k", "value": "novo"})["timestamp"] == 1
    menu.digitar("GET\nk\n")
    menu.esperar_respostas(4)
    menu.digitar(init_digitado(portas) + "GET\nk\n")
    menu.esperar_respostas(5)
    assert menu.fim() == 0
    linhas = menu.linhas()
    assert [re.sub(r"127\.0\.0\.1:\d+", "S", linha) for linha in linhas] == [
        "PUT_OK key: k value v1 timestamp 1 realizada no servidor S",
        "PUT_OK key: k value v2 timestamp 2 realizada no servidor S",
        "PUT_OK key: k value v3 timestamp 3 realizada no servidor S",
        "GET key: k value: TRY_OTHER_SERVER_OR_LATER obtido do servidor S, meu timestamp 3 "
        "e do servidor 1",
        "GET key: k value: novo obtido do servidor S, meu timestamp 0 e do servidor 1"], linhas
    assert menu.erros() == []
