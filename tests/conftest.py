"""Fixtures e ajudantes: servidores como processos de verdade, prontos por sondagem, em portas
que o próprio servidor prende (a fábrica escolhe a porta e, se ela estiver em uso, tenta outra).

Um ajudante para cada trabalho: quem precisa de um deles importa daqui.
"""

import contextlib
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
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

# Testes que mandam sinais POSIX (SIGINT, SIGSTOP) ou usam um pseudoterminal; no Windows, fora.
so_posix = pytest.mark.skipif(os.name != "posix", reason="usa sinais POSIX (SIGINT, SIGSTOP)")
# Testes que contam threads, descritores ou CPU de um processo em /proc (Linux).
so_com_proc = pytest.mark.skipif(not os.path.isdir("/proc/self/task"),
                                 reason="conta threads, descritores e CPU em /proc (Linux)")

# Perguntas do menu do cliente: tiradas do stdout para sobrar só as linhas do enunciado, seção 6
# (as perguntas não terminam a linha: vêm grudadas na resposta seguinte).
PERGUNTAS = re.compile(r"^(?:INIT, PUT ou GET\? |IP do servidor \d \[[^\]]*\]: "
                       r"|Porta do servidor \d \[\d+\]: |Key: |Value: )+")


def init_digitado(portas):
    """As respostas do INIT: Enter no IP (padrão 127.0.0.1) e a porta digitada."""
    return "INIT\n" + "".join("\n%d\n" % p for p in portas)


def linha_json(objeto):
    """Um pedido numa linha JSON compacta em UTF-8, como a Mensagem a escreveria."""
    return json.dumps(objeto, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"


# ------------------------------------------------------------------------------- portas

# Portas dos servidores dos testes: abaixo da faixa efêmera (Linux 32768-60999, Windows e macOS
# 49152-65535), de onde o sistema tira a porta de cada conexão de saída.
FAIXA_DE_PORTAS = (20000, 32000)
# No Linux um socket com SO_REUSEADDR preso a uma porta, sem listen, deixa o servidor abri-la por
# cima dele (create_server também liga SO_REUSEADDR no POSIX) e barra quem sonda a porta sem
# SO_REUSEADDR, como esta fábrica (também a de outra rodada da suíte) faz antes de escolher uma:
# a porta fica presa até o servidor a abrir. Em outros sistemas SO_REUSEADDR é outra coisa;
# lá a porta só é sondada, e a fábrica tenta outra se o servidor disser "porta em uso".
SEGURA_PORTA = sys.platform.startswith("linux")


def familia(ip):
    return socket.AF_INET6 if ":" in ip else socket.AF_INET


def ip_de_contato(ip):
    """O endereço para falar com um servidor que escuta em ip (0.0.0.0 e :: valem por todos)."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "localhost": "127.0.0.1"}.get(ip, ip)


def porta_livre():
    """Uma porta livre agora em 127.0.0.1, ao acaso fora da faixa efêmera, e solta em seguida.
    Não serve para servidores dos testes (outro pode tomá-la antes): para eles, a fábrica
    escolhe a porta (cluster.servidor) ou a prende (cluster.reservar, cluster.porta_morta)."""
    while True:
        porta = random.randrange(*FAIXA_DE_PORTAS)
        if livre("127.0.0.1", porta):
            return porta


def livre(ip, porta):
    """Ninguém está preso à porta (bind sem SO_REUSEADDR funciona)."""
    with socket.socket(familia(ip)) as sonda:
        try:
            sonda.bind((ip, porta))
        except OSError:
            return False
    return True


def aceita_conexao(porta, ip="127.0.0.1"):
    try:
        with socket.create_connection((ip, porta), timeout=1):
            return True
    except OSError:
        return False


# ------------------------------------------------------------------------------- esperas

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


def recursos(pid):
    """(threads, descritores abertos) do processo, lidos de /proc (so_com_proc)."""
    return (len(os.listdir("/proc/%d/task" % pid)), len(os.listdir("/proc/%d/fd" % pid)))


def recursos_em_repouso(pid):
    """(threads, descritores) depois de dez leituras iguais seguidas: as conexões que já
    fecharam (sondas de prontidão, barreiras) acabaram de ser desfeitas."""
    leituras = []

    def parado():
        leituras.append(recursos(pid))
        return len(leituras) >= 10 and len(set(leituras[-10:])) == 1
    esperar(parado, motivo="threads e sockets do processo %d pararem de mudar" % pid)
    return leituras[-1]


# --------------------------------------------------------------------------- rede crua

def trocar(porta, objeto_ou_bytes, prazo=PRAZO, ip="127.0.0.1"):
    """Numa conexão nova manda uma linha (dict vira JSON) e lê a linha de resposta; None se o
    servidor fechou a conexão (também com RST) sem responder."""
    dados = linha_json(objeto_ou_bytes) if isinstance(objeto_ou_bytes, dict) else objeto_ou_bytes
    with socket.create_connection((ip, porta), timeout=prazo) as sock:
        try:
            sock.sendall(dados)
            with sock.makefile("rb") as arquivo:
                linha = arquivo.readline()
        except (BrokenPipeError, ConnectionResetError):
            return None
    return json.loads(linha.decode("utf-8")) if linha else None


def get_direto(porta, key, timestamp=0, ip="127.0.0.1"):
    """A resposta (dict) de um GET direto a um servidor, sem o Cliente."""
    return trocar(porta, {"tipo": "GET", "key": key, "timestamp": timestamp}, ip=ip)


# As únicas linhas que um servidor escreve em stdout (enunciado, seção 6).
LINHAS_DO_SERVIDOR = [re.compile(padrao) for padrao in (
    r"Cliente \S+:\d+ PUT key:.* value:.*",
    r"Encaminhando PUT key:.* value:.*",
    r"REPLICATION key:.* value:.* ts:\d+",
    r"Enviando PUT_OK ao Cliente \S+:\d+ da key:.* ts:\d+",
    r"Cliente \S+:\d+ GET key:.* ts:\d+\. Meu ts é \d+, portanto devolvendo .*",
)]


def estado(porta, keys):
    """{key: (value, ts)} como o servidor responde a GETs com timestamp 0 (numa conexão só)."""
    resultado = {}
    with socket.create_connection(("127.0.0.1", porta), timeout=PRAZO) as sock, \
            sock.makefile("rb") as arquivo:
        for key in keys:
            sock.sendall(linha_json({"tipo": "GET", "key": key, "timestamp": 0}))
            linha = arquivo.readline()
            resposta = json.loads(linha.decode("utf-8")) if linha else None
            assert resposta is not None and resposta["tipo"] == "GET_OK", \
                "GET %s com timestamp 0 no servidor %d deu %r" % (key, porta, resposta)
            resultado[key] = (resposta["value"], resposta["timestamp"])
    return resultado


def exigir_console_limpo(*procs):
    """stderr vazio (fora as linhas de --detalhes) e stdout só com linhas da seção 6."""
    for proc in procs:
        assert proc.erro() == "", "%s escreveu em stderr:\n%s" % (proc.nome, proc.erro())
        estranhas = [linha for linha in proc.saida().splitlines()
                     if not any(p.fullmatch(linha) for p in LINHAS_DO_SERVIDOR)]
        assert not estranhas, \
            "%s imprimiu linhas fora da seção 6: %r" % (proc.nome, estranhas[:5])


class SeguidorFalso:
    """Um seguidor falso: abre o canal com o líder mandando JOIN e fala o resto à mão.

    em_partes=True manda só a primeira metade da linha do JOIN (um JOIN ainda chegando);
    terminar_join() manda o resto. resposta() lê o JOIN_OK (ou o ERRO); confirmar() manda o
    REPLICATION_OK da cópia (daí em diante ele está no conjunto); receber() lê a próxima
    mensagem do canal. Sem confirmar, o líder nunca o põe no conjunto.
    """

    def __init__(self, porta_lider, origem="127.0.0.1:1", timestamp=None, dados=None,
                 em_partes=False):
        pedido = {"tipo": "JOIN", "origem": origem}
        if timestamp is not None:
            pedido["timestamp"] = timestamp
        if dados is not None:
            pedido["dados"] = dados
        linha = linha_json(pedido)
        self.sock = socket.create_connection(("127.0.0.1", porta_lider), timeout=PRAZO)
        self.leitor = self.sock.makefile("rb")
        self.resto = linha[len(linha) // 2:] if em_partes else b""
        self.sock.sendall(linha[:len(linha) - len(self.resto)])
        self.copia = None

    def terminar_join(self):
        self.sock.sendall(self.resto)

    def receber(self):
        """A próxima mensagem do canal (dict), ou None se o líder fechou."""
        linha = self.leitor.readline()
        return json.loads(linha.decode("utf-8")) if linha else None

    def resposta(self):
        self.copia = self.receber()
        return self.copia

    def confirmar(self, timestamp=None):
        if timestamp is None:
            timestamp = self.copia["timestamp"]
        self.sock.sendall(linha_json({"tipo": "REPLICATION_OK", "timestamp": timestamp}))

    def fechar(self):
        self.leitor.close()
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *erro):
        self.fechar()


def join_falso(porta_lider, origem="127.0.0.1:1", timestamp=None, dados=None):
    """A resposta (dict) a um JOIN que nunca confirma a cópia (não entra no conjunto)."""
    with SeguidorFalso(porta_lider, origem, timestamp, dados) as falso:
        return falso.resposta()


ESPERA_FALSO = 0.1    # fatia do accept() do servidor falso, que confere se deve parar


class LiderFalso:
    """Escuta numa porta que ele mesmo prende e aceita o canal que o seguidor abre."""

    def __init__(self):
        self.ouvinte = socket.create_server(("127.0.0.1", 0))
        self.ouvinte.settimeout(PRAZO)
        self.porta = self.ouvinte.getsockname()[1]
        self.canal = self.leitor = None

    def aceitar(self):
        """Espera o seguidor conectar; devolve o JOIN dele (dict)."""
        self.fechar_canal()
        self.canal, _ = self.ouvinte.accept()
        self.canal.settimeout(PRAZO)
        self.leitor = self.canal.makefile("rb")
        return self.receber()

    def enviar(self, *mensagens):
        self.canal.sendall(b"".join(linha_json(m) for m in mensagens))

    def receber(self):
        """A próxima mensagem do seguidor (dict), ou None se ele fechou o canal."""
        linha = self.leitor.readline()
        return json.loads(linha.decode("utf-8")) if linha else None

    def fechar_canal(self):
        if self.canal is not None:
            self.leitor.close()
            self.canal.close()

    def fechar(self):
        self.fechar_canal()
        self.ouvinte.close()


class ServidorFalso:
    """Um 'servidor' numa porta que ele mesmo prende, que guarda cada pedido recebido e então,
    conforme o modo: "fecha" sem responder; "cala" (segura a conexão e nunca responde, como um
    processo pausado); "erro" (responde ERRO com o texto dado e fecha); "repassa" o pedido ao
    líder, espera a resposta dele, chama depois_do_lider() e fecha sem responder (o líder
    gravou e caiu);
    "responde" responde cada pedido da conexão com respostas.pop(0) (um dict)."""

    def __init__(self, modo, porta_lider=None, depois_do_lider=None, erro=None, respostas=None):
        self.modo = modo
        self.porta_lider = porta_lider
        self.depois_do_lider = depois_do_lider
        self.erro = erro
        self.respostas = respostas
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
            if self.modo == "responde":
                self.responder(sock, linha)
            elif self.modo == "erro":
                sock.sendall(linha_json({"tipo": "ERRO", "value": self.erro}))
                sock.close()
            elif self.modo == "repassa":
                with socket.create_connection(("127.0.0.1", self.porta_lider), PRAZO) as lider:
                    lider.sendall(linha)
                    lider.makefile("rb").readline()
                self.depois_do_lider()
                sock.close()
            elif self.modo == "fecha":
                sock.close()

    def responder(self, sock, linha):
        """Responde cada linha da conexão (persistente, como a do Cliente) até ela fechar."""
        leitor = sock.makefile("rb")
        while linha:
            sock.sendall(linha_json(self.respostas.pop(0)))
            linha = leitor.readline()
            if linha:
                self.pedidos.append(json.loads(linha))
        sock.close()

    def fechar(self):
        self.parar.set()
        self.thread.join(PRAZO)
        self.ouvinte.close()
        for sock in self.abertas:
            sock.close()


# ---------------------------------------------------------------------------- processos

class Processo:
    """Um Servidor.py (ou Cliente.py) rodando, com stdout e stderr em arquivos."""

    def __init__(self, args, pasta, nome, entrada=None, porta=None, ip="127.0.0.1", antes=None,
                 prefixo=()):
        """antes: função que o filho roda antes do Python (preexec_fn; só POSIX); prefixo: o
        comando que roda o Python (p. ex. ip netns exec NOME)."""
        self.nome = nome
        self.porta = porta
        self.ip = ip
        self.cluster = None        # quem o criou (Cluster): prende a porta quando ele morre
        self.barreiras = 0
        self.caminho_saida = os.path.join(pasta, nome + ".out")
        self.caminho_erro = os.path.join(pasta, nome + ".err")
        self.marca = 0
        # Arquivos, não PIPE: um pipe cheio travaria o print do servidor.
        with open(self.caminho_saida, "wb") as saida, open(self.caminho_erro, "wb") as erro:
            self.popen = subprocess.Popen(
                list(prefixo) + [sys.executable, "-u"] + args, cwd=RAIZ, stdout=saida,
                stderr=erro, env=AMBIENTE_FILHO, preexec_fn=antes,
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
        get_direto(self.porta, key, ip=ip_de_contato(self.ip))

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

    def esperar_fim(self, codigo=0, prazo=PRAZO):
        """Espera o processo terminar sozinho e confere o código de saída."""
        try:
            self.popen.wait(prazo)
        except subprocess.TimeoutExpired:
            pytest.fail("%s ainda rodava depois de %.0f s\nstdout:\n%s\nstderr:\n%s"
                        % (self.nome, prazo, self.saida(), self.erro()))
        assert self.popen.returncode == codigo, "%s saiu com código %s\nstdout:\n%s\nstderr:\n%s" \
            % (self.nome, self.popen.returncode, self.saida(), self.erro())

    def fim(self, erros=(), codigo=0, prazo=PRAZO):
        """Espera o fim; confere o código de saída e o stderr inteiro (as linhas erros, nada
        mais); devolve linhas(). Quem lê a saída de um processo confere os três."""
        self.esperar_fim(codigo, prazo)
        assert self.erro().splitlines() == list(erros), \
            "%s escreveu em stderr:\n%s" % (self.nome, self.erro())
        return self.linhas()

    def terminar(self):
        if self.vivo():
            self.popen.terminate()
            try:
                self.popen.wait(PRAZO)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(PRAZO)
        self.prender_porta()

    def matar(self):
        """SIGKILL: o processo morre sem fechar nada por conta própria."""
        self.popen.kill()
        self.popen.wait(PRAZO)
        self.prender_porta()

    def prender_porta(self):
        """A porta do servidor morto fica presa até outro servidor do teste abri-la."""
        if self.cluster is not None and self.porta is not None:
            self.cluster.prender(self.porta, self.ip)

    def interromper(self):
        """Ctrl+C (SIGINT; só POSIX: marque o teste com so_posix)."""
        self.popen.send_signal(signal.SIGINT)


class ClienteDigitado(Processo):
    """Cliente.py com a entrada toda já escrita no stdin (EOF no fim). linhas() tira as
    perguntas do menu: sobram as linhas do enunciado, seção 6."""

    def linhas(self):
        linhas = [PERGUNTAS.sub("", linha) for linha in self.saida().splitlines()[self.marca:]]
        return [linha for linha in linhas if linha]


class ClienteAberto(ClienteDigitado):
    """Cliente.py com o stdin aberto: a pessoa digita uma ação, espera a resposta, digita
    outra."""

    def __init__(self, cluster, nome, prefixo=()):
        self.nome = nome
        self.porta = None
        self.ip = None
        self.cluster = None
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

    def erros(self):
        return self.erro().splitlines()

    def esperar_respostas(self, quantas):
        """Espera o total de respostas (linhas da seção 6 mais linhas de stderr) chegar a
        quantas."""
        def chegaram():
            self.exigir_vivo()
            return len(self.linhas()) + len(self.erros()) >= quantas
        esperar(chegaram, motivo="%s responder %d vezes" % (self.nome, quantas))

    def fim(self, erros=(), codigo=0, prazo=PRAZO):
        """Fecha o stdin (EOF, a pessoa parou de digitar) e confere o fim (Processo.fim)."""
        self.fechar_entrada()
        return Processo.fim(self, erros, codigo, prazo)

    def fechar_entrada(self):
        try:
            self.popen.stdin.close()
        except OSError:
            pass  # o cliente já saiu: o pipe está quebrado

    def terminar(self):
        self.fechar_entrada()
        Processo.terminar(self)


class Cluster:
    """Fábrica de servidores e clientes; todos terminam no teardown (ExitStack)."""

    def __init__(self, pasta, pilha):
        self.pasta = pasta
        self.pilha = pilha
        self.contagem = 0
        self.presas = {}   # (ip, porta) -> socket que a prende até um servidor do teste abri-la

    # ---- portas

    def reservar(self, ip="127.0.0.1"):
        """Uma porta para um servidor que ainda vai subir (outros já apontam para ela), presa
        até ele a abrir (no Linux; veja SEGURA_PORTA)."""
        while True:
            porta = random.randrange(*FAIXA_DE_PORTAS)
            if livre(ip, porta) and self.prender(porta, ip):
                return porta

    def prender(self, porta, ip="127.0.0.1"):
        """Prende a porta com SO_REUSEADDR e sem listen: o servidor do teste a abre por cima,
        quem só sonda a acha ocupada. False se alguém já escuta nela."""
        if not SEGURA_PORTA or (ip, porta) in self.presas:
            return True
        presa = socket.socket(familia(ip))
        presa.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            presa.bind((ip, porta))
        except OSError:
            presa.close()
            return False
        self.presas[(ip, porta)] = presa
        self.pilha.callback(presa.close)
        return True

    def soltar(self, porta, ip="127.0.0.1"):
        presa = self.presas.pop((ip, porta), None)
        if presa is not None:
            presa.close()

    def porta_morta(self, ip="127.0.0.1"):
        """Uma porta em que ninguém atende: o teste a prende (bind sem listen nem SO_REUSEADDR)
        até o fim; connect é recusado e ninguém mais a abre."""
        while True:
            morta = socket.socket(familia(ip))
            try:
                morta.bind((ip, random.randrange(*FAIXA_DE_PORTAS)))
            except OSError:
                morta.close()
                continue
            self.pilha.callback(morta.close)
            return morta.getsockname()[1]

    # ---- processos

    def iniciar(self, args, nome, porta, entrada=None, ip="127.0.0.1", esperar_porta=True,
                antes=None):
        """Um Servidor.py (args) que abre porta; com esperar_porta, pronto quando a porta aceita
        conexões. Devolve o Processo, ou None se ele saiu dizendo "porta em uso"."""
        self.contagem += 1
        proc = Processo(args, self.pasta, "%s%d-%d" % (nome, self.contagem, porta), entrada,
                        porta=porta, ip=ip, antes=antes)
        proc.cluster = self
        self.pilha.callback(proc.terminar)
        if not esperar_porta:
            return proc

        def pronto():
            return not proc.vivo() or aceita_conexao(porta, ip_de_contato(ip))
        esperar(pronto, motivo="%s aceitar conexões" % proc.nome)
        if not proc.vivo():
            if proc.popen.returncode == 2 and "porta em uso" in proc.erro():
                return None
            proc.exigir_vivo()
        self.soltar(porta, ip)
        return proc

    def servidor(self, porta=None, porta_lider=None, *extras, ip="127.0.0.1",
                 ip_lider="127.0.0.1", opcoes_python=(), esperar_porta=True, antes=None):
        """Um Servidor.py com --detalhes. porta None: a fábrica escolhe (e tenta outra se a
        escolhida estiver em uso); porta_lider None: ele é o líder. opcoes_python vão antes de
        Servidor.py (ex.: ["-c", código]), extras depois dos quatro valores; antes: função que
        o filho roda antes do Python (preexec_fn; só POSIX)."""
        escolhida = porta is None
        for _ in range(20):
            if escolhida:
                porta = self.reservar(ip)
            else:
                self.prender(porta, ip)   # um reinício: ninguém a toma até ele abrir
            lider = porta if porta_lider is None else porta_lider
            args = list(opcoes_python) + ["Servidor.py", ip, str(porta), ip_lider, str(lider),
                                          "--detalhes"] + list(extras)
            proc = self.iniciar(args, "servidor", porta, ip=ip, esperar_porta=esperar_porta,
                                antes=antes)
            if proc is not None:
                return proc
            if not escolhida:
                pytest.fail("a porta %d, deste teste, foi tomada por outro processo" % porta)
        pytest.fail("20 portas em uso seguidas")

    def lider(self, *extras, **opcoes):
        return self.servidor(None, None, *extras, **opcoes)

    def seguidor(self, porta_lider, *extras, **opcoes):
        return self.servidor(None, porta_lider, *extras, **opcoes)

    def tres(self, atraso=None, extras_lider=(), antes=None):
        """Líder e dois seguidores já unidos ao líder (o segundo com --atraso-replicacao
        atraso, se dado); devolve (procs, portas)."""
        lider = self.lider(*extras_lider, antes=antes)
        extras = [] if atraso is None else ["--atraso-replicacao", str(atraso)]
        procs = [lider, self.seguidor(lider.porta, antes=antes),
                 self.seguidor(lider.porta, *extras, antes=antes)]
        for proc in procs[1:]:
            esperar_unido(lider, proc.porta)
        for proc in procs:
            proc.marcar()
        return procs, [proc.porta for proc in procs]

    def cliente(self, entrada, opcoes_python=()):
        """Cliente.py com a entrada dada já escrita no stdin (fecha no fim: EOF)."""
        self.contagem += 1
        proc = ClienteDigitado(list(opcoes_python) + ["Cliente.py"], self.pasta,
                               "cliente%d" % self.contagem, entrada)
        self.pilha.callback(proc.terminar)
        return proc


def esperar_unido(lider, porta, antes=0):
    """O líder pôs o seguidor da porta no conjunto mais vezes que `antes` (a linha "unido" do
    --detalhes sai depois que o canal entrou: daí em diante todo PUT_OK espera por ele)."""
    def unido():
        lider.exigir_vivo()
        return lider.unioes(porta) > antes
    esperar(unido, motivo="seguidor %d unir-se ao líder %s" % (porta, lider.nome))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Guarda o resultado de cada fase no item (item.resultado_call...): um fixture que
    divide um cluster entre testes sabe se o anterior falhou no meio."""
    resultado = yield
    relatorio = resultado.get_result()
    setattr(item, "resultado_" + relatorio.when, relatorio)


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


@pytest.fixture
def falso(cluster):
    """Um líder falso (LiderFalso), fechado no teardown do cluster."""
    lider = LiderFalso()
    cluster.pilha.callback(lider.fechar)
    return lider


@pytest.fixture
def falsos(cluster):
    """Fábrica de servidores falsos (ServidorFalso), fechados no teardown do cluster."""
    def criar(modo, **opcoes):
        falso = ServidorFalso(modo, **opcoes)
        cluster.pilha.callback(falso.fechar)
        return falso
    return criar


def lider_em_memoria(tmp_path=None):
    """Um Servidor líder sem porta nem threads (a porta nunca é aberta: qualquer número
    serve), para chamar os métodos direto; com tmp_path, com --dados em tmp_path/dados."""
    from Servidor import Servidor
    servidor = Servidor("127.0.0.1", 10097, "127.0.0.1", 10097, prazo_replicacao=1.0,
                        dados=None if tmp_path is None else str(tmp_path / "dados"))
    servidor.historia_ouvida.set()   # já ouviu a história: o PUT não espera
    return servidor


def enderecos(portas):
    return [("127.0.0.1", p) for p in portas]
