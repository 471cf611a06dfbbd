"""Fixtures: servidores como processos de verdade, em portas livres, prontos por sondagem."""

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time

import pytest

RAIZ = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, RAIZ)

from Cliente import Cliente  # noqa: E402
from Mensagem import Mensagem  # noqa: E402,F401 (os testes importam daqui)

PRAZO = 15.0          # toda espera dos testes tem este limite (SHORT_TIMEOUT do CPython)
SONDA = 0.02          # intervalo entre sondagens
# Começo das linhas que o servidor escreve em stderr com --detalhes (os testes sempre o pedem:
# é por elas que sabem que um seguidor está unido ao líder, sem adivinhar).
DETALHE = "Detalhe: "
# Key dos GETs de barreira (sincronizar): as linhas deles não contam nas linhas do teste.
BARREIRA = "__barreira__"

# Os processos filhos escrevem UTF-8, como os testes leem: sem isto, no Windows o console de um
# filho usa a página de código da máquina (cp1252, cp850) e "Meu ts é" ou "olá" chegam trocados.
AMBIENTE_FILHO = dict(os.environ, PYTHONUTF8="1", PYTHONIOENCODING="utf-8")

# Para testes que mandam sinais POSIX (SIGINT pelo Popen); no Windows eles ficam de fora.
so_posix = pytest.mark.skipif(os.name != "posix", reason="manda sinais POSIX (SIGINT)")


# Portas dos servidores dos testes: abaixo da faixa efêmera (Linux 32768-60999, Windows e macOS
# 49152-65535), de onde o sistema tira a porta de cada conexão de saída. Uma porta efêmera
# livre agora pode virar a porta de saída de outra conexão antes de o servidor abri-la.
FAIXA_DE_PORTAS = (20000, 32000)


def porta_livre():
    """Uma porta TCP livre agora em 127.0.0.1, ao acaso fora da faixa efêmera."""
    while True:
        porta = random.randrange(*FAIXA_DE_PORTAS)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", porta))
            except OSError:
                continue   # ocupada: outra
            return porta


def esperar(condicao, prazo=PRAZO, motivo="condição"):
    """Sonda condicao() até ser verdadeira; falha o teste no prazo."""
    limite = time.monotonic() + prazo
    while True:
        valor = condicao()
        if valor:
            return valor
        if time.monotonic() > limite:
            pytest.fail("esperou %.0f s por: %s" % (prazo, motivo))
        time.sleep(SONDA)


class Processo:
    """Um Servidor.py (ou Cliente.py) rodando, com stdout e stderr em arquivos."""

    def __init__(self, args, pasta, nome, entrada=None, porta=None, antes=None, prefixo=()):
        """prefixo: o comando que roda o Python (p. ex. ip netns exec NOME)."""
        self.nome = nome
        self.porta = porta
        self.barreiras = 0
        self.caminho_saida = os.path.join(pasta, nome + ".out")
        self.caminho_erro = os.path.join(pasta, nome + ".err")
        self.marca = 0
        # Arquivos, não PIPE: um pipe cheio travaria o print do servidor.
        with open(self.caminho_saida, "wb") as saida, open(self.caminho_erro, "wb") as erro:
            self.popen = subprocess.Popen(
                list(prefixo) + [sys.executable, "-u"] + args, cwd=RAIZ, stdout=saida, stderr=erro,
                env=AMBIENTE_FILHO, preexec_fn=antes,
                stdin=subprocess.PIPE if entrada is not None else subprocess.DEVNULL)
        if entrada is not None:
            self.popen.stdin.write(entrada.encode("utf-8"))
            self.popen.stdin.close()

    def saida(self):
        with open(self.caminho_saida, encoding="utf-8", errors="replace") as f:
            return f.read()

    def erro(self):
        """O stderr, sem as linhas de --detalhes (que só os testes pedem)."""
        return "".join(linha for linha in self.erro_inteiro().splitlines(keepends=True)
                       if not linha.startswith(DETALHE))

    def erro_inteiro(self):
        with open(self.caminho_erro, encoding="utf-8", errors="replace") as f:
            return f.read()

    def unioes(self, porta):
        """Quantas vezes este líder pôs o seguidor da porta no conjunto (--detalhes)."""
        return self.erro_inteiro().count("%sseguidor 127.0.0.1:%d unido " % (DETALHE, porta))

    def linhas(self):
        """As linhas do stdout depois da marca, sem as das barreiras."""
        return [linha for linha in self.saida().splitlines()[self.marca:] if BARREIRA not in linha]

    def sincronizar(self):
        """Barreira: o servidor escreve o console por uma fila, em ordem; quando a linha de um
        GET novo aparece, todas as linhas dos pedidos já respondidos saíram antes dela."""
        self.barreiras += 1
        key = "%s%d" % (BARREIRA, self.barreiras)
        trocar(self.porta, {"tipo": "GET", "key": key, "timestamp": 0})

        def escrita():
            self.exigir_vivo()
            return "GET key:%s ts:" % key in self.saida()
        esperar(escrita, motivo="%s escrever a linha da barreira" % self.nome)

    def linhas_agora(self):
        """linhas() depois de uma barreira: tudo o que os pedidos já respondidos imprimiram."""
        self.sincronizar()
        return self.linhas()

    def marcar(self):
        """Daqui em diante linhas() mostra só o que vier depois (ignora sondas de prontidão)."""
        if self.porta is not None:
            self.sincronizar()
        self.marca = len(self.saida().splitlines())

    def vivo(self):
        return self.popen.poll() is None

    def esperar_linha(self, linha, prazo=PRAZO, vezes=1):
        """Espera a linha exata aparecer (vezes) no stdout."""
        def achou():
            self.exigir_vivo()
            return self.linhas().count(linha) >= vezes
        esperar(achou, prazo, "%s imprimir %r" % (self.nome, linha))

    def exigir_vivo(self):
        if not self.vivo():
            pytest.fail("%s terminou (código %s)\nstdout:\n%s\nstderr:\n%s"
                        % (self.nome, self.popen.returncode, self.saida(), self.erro()))

    def terminar(self):
        if self.vivo():
            self.popen.terminate()
            try:
                self.popen.wait(PRAZO)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(PRAZO)

    def matar(self):
        """SIGKILL: o processo morre sem fechar nada por conta própria."""
        self.popen.kill()
        self.popen.wait(PRAZO)

    def interromper(self):
        """Ctrl+C (SIGINT; só POSIX: marque o teste com so_posix)."""
        self.popen.send_signal(signal.SIGINT)


class ClienteAberto(Processo):
    """Cliente.py com o stdin aberto: para no menu esperando a pessoa digitar (digitar)."""

    def __init__(self, cluster, nome, prefixo=()):
        self.nome = nome
        self.porta = None
        self.barreiras = 0
        self.marca = 0
        self.caminho_saida = os.path.join(cluster.pasta, nome + ".out")
        self.caminho_erro = os.path.join(cluster.pasta, nome + ".err")
        with open(self.caminho_saida, "wb") as saida, open(self.caminho_erro, "wb") as erro:
            self.popen = subprocess.Popen(
                [sys.executable, "-u"] + list(prefixo) + ["Cliente.py"], cwd=RAIZ,
                stdin=subprocess.PIPE, stdout=saida, stderr=erro, env=AMBIENTE_FILHO)
        cluster.pilha.callback(self.terminar)

    def digitar(self, texto):
        self.popen.stdin.write(texto.encode("utf-8"))
        self.popen.stdin.flush()

    def terminar(self):
        try:
            self.popen.stdin.close()
        except OSError:
            pass  # o cliente já saiu: o pipe está quebrado
        Processo.terminar(self)


def aceita_conexao(porta):
    try:
        with socket.create_connection(("127.0.0.1", porta), timeout=1):
            return True
    except OSError:
        return False


def trocar(porta, objeto_ou_bytes, prazo=PRAZO):
    """Abre uma conexão, manda uma linha (dict vira JSON) e lê a linha de resposta."""
    import json
    if isinstance(objeto_ou_bytes, dict):
        dados = json.dumps(objeto_ou_bytes).encode() + b"\n"
    else:
        dados = objeto_ou_bytes
    with socket.create_connection(("127.0.0.1", porta), timeout=prazo) as s:
        s.sendall(dados)
        arquivo = s.makefile("rb")
        linha = arquivo.readline()
    return json.loads(linha) if linha else None


class Cluster:
    """Fábrica de servidores; todos terminam no teardown (ExitStack)."""

    def __init__(self, pasta, pilha):
        self.pasta = pasta
        self.pilha = pilha
        self.contagem = 0

    def servidor(self, porta, porta_lider, *extras, esperar_porta=True, antes=None):
        """antes: função que o processo filho roda antes do Python (preexec_fn; só POSIX)."""
        self.contagem += 1
        nome = "servidor%d-%d" % (self.contagem, porta)
        args = ["Servidor.py", "127.0.0.1", str(porta), "127.0.0.1", str(porta_lider),
                "--detalhes"]
        proc = Processo(args + list(extras), self.pasta, nome, porta=porta, antes=antes)
        self.pilha.callback(proc.terminar)
        if esperar_porta:
            def pronto():
                proc.exigir_vivo()
                return aceita_conexao(porta)
            esperar(pronto, motivo="%s aceitar conexões" % nome)
        return proc

    def tres(self, atraso=None, extras_lider=(), antes=None):
        """Líder e dois seguidores já unidos ao líder; devolve (procs, portas)."""
        portas = [porta_livre() for _ in range(3)]
        lider = self.servidor(portas[0], portas[0], *extras_lider, antes=antes)
        extras = [] if atraso is None else ["--atraso-replicacao", str(atraso)]
        seguidores = [self.servidor(portas[1], portas[0], antes=antes),
                      self.servidor(portas[2], portas[0], *extras, antes=antes)]
        for porta in portas[1:]:
            esperar_unido(lider, porta)
        procs = [lider] + seguidores
        for proc in procs:
            proc.marcar()
        return procs, portas

    def cliente(self, entrada):
        """Cliente.py com a entrada dada já escrita no stdin (fecha no fim: EOF)."""
        self.contagem += 1
        proc = Processo(["Cliente.py"], self.pasta, "cliente%d" % self.contagem, entrada)
        self.pilha.callback(proc.terminar)
        return proc


def esperar_unido(lider, porta, antes=0):
    """O líder pôs o seguidor da porta no conjunto mais vezes que `antes` (a linha "unido" do
    --detalhes sai depois que o canal entrou: daí em diante todo PUT_OK espera por ele)."""
    def unido():
        lider.exigir_vivo()
        return lider.unioes(porta) > antes
    esperar(unido, motivo="seguidor %d unir-se ao líder %s" % (porta, lider.nome))


@pytest.fixture
def cluster(tmp_path):
    with contextlib.ExitStack() as pilha:
        yield Cluster(str(tmp_path), pilha)


@pytest.fixture
def cliente():
    """Um Cliente (biblioteca) com prazo de resposta: nenhum teste espera para sempre."""
    c = Cliente()
    yield c
    c.fechar()


def enderecos(portas):
    return [("127.0.0.1", p) for p in portas]
