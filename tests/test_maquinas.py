"""Servidores em máquinas diferentes (enunciado, seção 5a: "127.0.0.1 se estiver realizando o
projeto na mesma máquina"). Uma máquina que some não se despede: nem FIN nem RST. Cada máquina
aqui é um namespace de rede do Linux, ligado aos outros por um par veth; "reiniciar" uma é
cortar o cabo, matar o processo e destruir o namespace (o estado TCP do kernel vai junto) e
fazê-lo de novo com o mesmo endereço. Precisa de Linux, root e do comando ip."""

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from conftest import Processo, esperar
from Servidor import Servidor

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or not hasattr(os, "geteuid") or os.geteuid() != 0
    or shutil.which("ip") is None,
    reason="cria namespaces de rede (Linux, root, comando ip)")

PORTA = 10097   # dentro de namespaces novos, só deste teste: nenhuma outra porta em uso

# Quem fala com os servidores de dentro de um namespace: lê pedidos JSON do stdin, responde
# uma linha JSON cada. "nome" guarda a conexão para o próximo pedido, como um cliente
# persistente.
AGENTE = r"""
import json, socket, sys
conexoes = {}
for linha in sys.stdin:
    pedido = json.loads(linha)
    try:
        destino = (pedido["ip"], pedido["porta"])
        if pedido["op"] == "aceita":
            socket.create_connection(destino, timeout=1).close()
            resposta = True
        else:
            nome = pedido.get("nome")
            if nome not in conexoes:
                sock = socket.create_connection(destino, timeout=pedido.get("prazo", 15))
                conexoes[nome] = (sock, sock.makefile("rb"))
            sock, leitor = conexoes[nome] if nome else conexoes.pop(None)
            sock.sendall((json.dumps(pedido["msg"]) + "\n").encode())
            lida = leitor.readline()
            resposta = json.loads(lida) if lida else None
            if not nome:
                sock.close()
    except OSError as erro:
        conexoes.pop(pedido.get("nome"), None)
        resposta = {"falha": str(erro)}
    print(json.dumps(resposta), flush=True)
"""


def ip(*args):
    subprocess.run(["ip"] + list(args), check=True)


class Rede:
    """Duas "máquinas" (namespaces) ligadas por um par veth, com nomes e endereços só deste
    processo de teste; tudo é desfeito no fim, também quando o teste falha."""

    def __init__(self, pasta):
        sufixo = "%d" % (os.getpid() % 100000)
        self.pasta = pasta
        self.nomes = {"a": "kva" + sufixo, "b": "kvb" + sufixo}
        rede = 16 + os.getpid() % 200   # 10.N.x.x: um bloco por processo de teste
        self.enlace = {"a": "10.%d.1.1" % rede, "b": "10.%d.1.2" % rede}
        # Os endereços dos servidores ficam no lo da máquina deles, a rede 10.N.2 em a e a
        # 10.N.3 em b: sobrevivem ao cabo, e cada máquina chega à rede da outra por ele.
        self.proprio = {"a": "10.%d.2.1" % rede, "b1": "10.%d.3.2" % rede,
                        "b2": "10.%d.3.3" % rede}
        self.redes = {"a": "10.%d.2.0/24" % rede, "b": "10.%d.3.0/24" % rede}
        self.processos = []
        self.agentes = {}

    def criar(self, lado):
        """Faz o namespace do lado ("a" ou "b") com os endereços dele, e o cabo entre os dois,
        se o outro existe."""
        ip("netns", "add", self.nomes[lado])
        ip("-n", self.nomes[lado], "link", "set", "lo", "up")
        for nome, endereco in self.proprio.items():
            if nome.startswith(lado):
                ip("-n", self.nomes[lado], "addr", "add", endereco + "/32", "dev", "lo")
        if all(self.existe(l) for l in "ab"):
            self.ligar()

    def ligar(self):
        va, vb = "va" + self.nomes["a"][3:], "vb" + self.nomes["a"][3:]
        ip("link", "add", va, "netns", self.nomes["a"], "type", "veth", "peer", "name", vb,
           "netns", self.nomes["b"])
        for lado, dev, outro in (("a", va, "b"), ("b", vb, "a")):
            ip("-n", self.nomes[lado], "addr", "add", self.enlace[lado] + "/24", "dev", dev)
            ip("-n", self.nomes[lado], "link", "set", dev, "up")
            ip("-n", self.nomes[lado], "route", "add", self.redes[outro], "via",
               self.enlace[outro])

    def existe(self, lado):
        return self.nomes[lado] in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                                  text=True).stdout.split()

    def sumir(self, lado, *processos):
        """A máquina some: cabo cortado primeiro, depois o processo morre, o cabo é desfeito
        (as duas pontas) e o namespace, com o estado TCP do kernel, é destruído."""
        dev = ("va" if lado == "a" else "vb") + self.nomes["a"][3:]
        ip("-n", self.nomes[lado], "link", "set", dev, "down")
        for proc in processos:
            proc.matar()
        agente = self.agentes.pop(lado, None)
        if agente is not None:
            agente.kill()
            agente.wait()
        # Conexões órfãs do processo morto seguram o namespace um tempo: o cabo é desfeito
        # já, para a máquina poder voltar com outro.
        ip("-n", self.nomes[lado], "link", "del", dev)
        ip("netns", "del", self.nomes[lado])

    def servidor(self, lado, nome, endereco, lider):
        proc = Processo(["Servidor.py", endereco, str(PORTA), lider, str(PORTA), "--detalhes"],
                        self.pasta, nome, porta=PORTA, prefixo=("ip", "netns", "exec",
                                                                self.nomes[lado]))
        self.processos.append(proc)
        return proc

    def pedir(self, lado, op, ip_, **campos):
        """Um pedido do agente que roda dentro do lado; devolve a resposta dele."""
        if lado not in self.agentes:
            agente = subprocess.Popen(["ip", "netns", "exec", self.nomes[lado], sys.executable,
                                       "-u", "-c", AGENTE], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE)
            self.agentes[lado] = agente
        agente = self.agentes[lado]
        campos.update(op=op, ip=ip_, porta=PORTA)
        agente.stdin.write((json.dumps(campos) + "\n").encode())
        agente.stdin.flush()
        return json.loads(agente.stdout.readline())

    def desfazer(self):
        for agente in self.agentes.values():
            agente.kill()
        for proc in self.processos:
            if proc.vivo():
                proc.matar()
        for nome in self.nomes.values():
            subprocess.run(["ip", "netns", "del", nome], stderr=subprocess.DEVNULL)


@pytest.fixture
def rede(tmp_path):
    rede = Rede(str(tmp_path))
    try:
        yield rede
    finally:
        rede.desfazer()


def put(key, value):
    return {"tipo": "PUT", "key": key, "value": value}


def get(key, timestamp):
    return {"tipo": "GET", "key": key, "timestamp": timestamp}


# Lento (~10 s): a máquina do líder fica fora mais que o keepalive leva para achar o canal morto.
def test_maquina_do_lider_reinicia_e_os_seguidores_voltam_antes_do_primeiro_timestamp(rede):
    """[5f] O líder numa máquina, os dois seguidores noutra. a=velho (ts 1); a máquina do
    líder some sem se despedir e volta no mesmo endereço com um líder novo. Sem PUT nenhum,
    os seguidores acham o canal morto e, quando o líder volta, o JOIN deles chega antes do
    primeiro timestamp: a=novo ganha ts acima de 1, e nenhum seguidor devolve velho. Um PUT
    numa conexão de encaminhamento antiga recebe "está fora do ar; o PUT não foi feito"."""
    rede.criar("a")
    rede.criar("b")
    lider_ip = rede.proprio["a"]
    lider = rede.servidor("a", "lider", lider_ip, lider_ip)
    seguidores = [rede.servidor("b", nome, rede.proprio[nome], lider_ip) for nome in ("b1", "b2")]
    esperar(lambda: lider.erro_inteiro().count(" unido no ts ") == 2,
            motivo="os dois seguidores se unirem ao líder")
    velho = rede.pedir("b", "pedir", rede.proprio["b1"], nome="cliente", msg=put("a", "velho"))
    assert (velho["tipo"], velho["timestamp"]) == ("PUT_OK", 1), velho

    rede.sumir("a", lider)
    # A máquina fica fora mais que o keepalive leva para achar uma conexão morta.
    time.sleep(Servidor.PRAZO_VIVO + 2)
    for seguidor in seguidores:
        seguidor.exigir_vivo()
    antigo = rede.pedir("b", "pedir", rede.proprio["b1"], nome="cliente", msg=put("a", "perdido"))
    assert antigo.get("tipo") == "ERRO" and "fora do ar; o PUT não foi feito" in antigo["value"], \
        antigo

    rede.criar("a")
    lider = rede.servidor("a", "lider-novo", lider_ip, lider_ip)
    esperar(lambda: rede.pedir("b", "aceita", lider_ip) is True, motivo="o líder novo subir")
    novo = rede.pedir("b", "pedir", lider_ip, msg=put("a", "novo"))
    assert novo.get("tipo") == "PUT_OK" and novo["timestamp"] > 1, novo
    for nome in ("b1", "b2"):
        def leu_novo():
            lido = rede.pedir("b", "pedir", rede.proprio[nome], msg=get("a", novo["timestamp"]))
            assert lido.get("value") != "velho" and "falha" not in lido, (nome, lido)
            return lido["tipo"] == "GET_OK"
        esperar(leu_novo, motivo="%s ter a escrita nova" % nome)
    esperar(lambda: lider.erro_inteiro().count(" unido no ts ") == 2,
            motivo="os dois seguidores se unirem ao líder novo")


# Lento (~6 s): o keepalive acha o canal de um seguidor cuja máquina sumiu.
def test_maquina_de_um_seguidor_some_e_o_lider_o_tira_sem_precisar_de_put(rede):
    """[5e] O líder numa máquina, um seguidor noutra, que some sem se despedir: sem PUT nenhum,
    o líder acha o canal morto e tira o seguidor do conjunto; o PUT seguinte não espera por
    ele (nem pelo prazo de replicação)."""
    rede.criar("a")
    rede.criar("b")
    lider_ip = rede.proprio["a"]
    lider = rede.servidor("a", "lider", lider_ip, lider_ip)
    seguidor = rede.servidor("b", "b1", rede.proprio["b1"], lider_ip)
    esperar(lambda: " unido no ts " in lider.erro_inteiro(), motivo="o seguidor se unir")
    assert rede.pedir("a", "pedir", lider_ip, msg=put("a", "1"))["tipo"] == "PUT_OK"

    rede.sumir("b", seguidor)
    esperar(lambda: " saiu do conjunto" in lider.erro_inteiro(),
            motivo="o líder tirar o seguidor que sumiu, sem PUT nenhum")
    inicio = time.monotonic()
    resposta = rede.pedir("a", "pedir", lider_ip, msg=put("a", "2"))
    assert resposta["tipo"] == "PUT_OK", resposta
    # O seguidor já saiu: o PUT não espera o prazo de replicação (40 s).
    assert time.monotonic() - inicio < Servidor.PRAZO_REPLICACAO / 4
    lider.exigir_vivo()
