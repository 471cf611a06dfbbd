"""Benchmark do KV Store contra o piso de um servidor eco (issue #4). Não faz parte da suíte.

O piso é um servidor eco em Python com socket cru, uma thread por conexão, que como os nossos lê
uma linha JSON, analisa, imprime uma linha no console (stdout num arquivo) e responde uma linha.
Os mesmos geradores de carga falam com o eco e com o KV (conexão persistente, TCP_NODELAY, os
mesmos bytes), sempre em pares seguidos (KV, eco; na rodada seguinte eco, KV), e cada número sai
também como razão ao eco: a mediana das razões de cada rodada. A máquina é dividida e os tempos
absolutos oscilam; a razão de um par medido junto oscila bem menos.

Medidas:
  - latência (mediana e p99), um cliente: GET num seguidor, PUT no líder, PUT num seguidor;
  - vazão com 1, 8 e 32 clientes simultâneos: só GET (num seguidor) e só PUT (no líder);
    os clientes ficam em até 8 processos geradores (o GIL do gerador não é o gargalo);
  - CPU dos servidores por requisição, dos três juntos, com 8 clientes: utime + stime de
    /proc/<pid>/stat (do SO, não tempo de parede) dividido pelas requisições feitas;
  - ocioso: a CPU por segundo do servidor que mais gasta, 10 s sem pedido nenhum, e quanto a
    linha de um GET leva, logo depois, para aparecer no console do seguidor (ms);
  - disco: vazão de PUT com 8 clientes num cluster cujo líder grava o registro (--dados) e
    noutro com --dados --fsync, como razão ao cluster sem disco medido na mesma rodada;
  - JOIN: o líder guarda 100 000 keys; (1) a troca JOIN -> JOIN_OK feita pelo bench com o
    Mensagem do código medido, até o último byte e até a tabela pronta; (2) um seguidor novo,
    processo de verdade: da porta dele aceitar conexão (o canal com o líder abre logo depois)
    até ele responder GET_OK à última key com o timestamp dela. O piso do JOIN é o eco de uma
    linha do tamanho do snapshot;
  - escala (só com --fases; sem eco, num cluster só dela): vazão e latência (p50, p99) de PUT e
    de GET com 10, 100, 1 000 e 5 000 conexões persistentes, divididas por igual entre os três
    servidores e abertas antes de medir, em laço fechado (cada conexão manda um pedido, espera a
    resposta inteira, manda o próximo; cada conexão PUT com a sua key). A carga sai de 2
    processos geradores, cada um com um laço de eventos (selectors), não de uma thread por
    cliente. Uma volta com um pedido por conexão (todas aceitas e servidas), aquecimento, e uma
    janela (5 s) igual em todos os geradores: vazão = respostas certas completadas na janela /
    duração. Falha é qualquer outra resposta, connect que falha,
    conexão fechada ou resetada, e toda linha que um servidor escreve em stderr. Antes da curva,
    a memória (RSS) por conexão ociosa em cada servidor, e num seguidor depois de um PUT em
    cada conexão (no seguidor e no líder). O limite "soft" de descritores dos servidores e dos
    geradores sobe até o "hard" (POSIX).

Uso:
    python tests/bench.py [--json arquivo.json] [--rapido] [--codigo PASTA] [--rodadas N]
                          [--clientes 1,8,32] [--fases latencia,vazao,ocioso,disco,join]
                          [--keys-join N] [--fixar] [--perfil PASTA] [--manter] [--contra PASTA]
    python tests/bench.py --fases escala [--escala 10,100,1000,5000] [--janela SEGUNDOS]
                          [--ociosas N] [--codigo PASTA] [--json arquivo.json]
    python tests/bench.py --eco PORTA        # só o servidor eco (o bench o inicia sozinho)

--codigo PASTA roda Servidor.py e Mensagem.py de outra pasta (padrão: a raiz do repositório).
--contra PASTA mede o código de --codigo contra o de PASTA na mesma execução: um segundo
cluster com aquele código toma o lugar do eco em cada par (fases latencia, vazao e ocioso), e
cada número sai como razão à outra versão, da mesma rodada. --perfil PASTA grava, com py-spy
(se instalado), um perfil de cada servidor durante as fases de vazão. Numa máquina com
outras cargas, "nice -n -10 python tests/bench.py" (como root) tira boa parte da
interferência, e --fixar (Linux) prende cada servidor num núcleo, o que tira a maior parte da
oscilação da vazão.
"""

import argparse
import contextlib
import json
import os
import platform
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

RAIZ = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IP = "127.0.0.1"
PRAZO = 60.0             # toda espera tem este limite
SONDA = 0.002            # intervalo entre sondagens (prontidão, JOIN)
MAX_PROCESSOS = 8        # processos geradores de carga; acima disso, threads dentro deles
KEYS_BASE = 1000         # keys pré-carregadas no cluster principal
AQUECIMENTO = 50         # requisições por conexão antes de medir
GERADORES_ESCALA = 2     # processos geradores por ponto da fase escala (um laço de eventos cada)

# Tamanho de cada fase: pares KV/eco por medida, requisições por latência, segundos por vazão.
PARAMETROS = {
    "completo": {"rodadas": 7, "n_latencia": 2000, "duracao": 2.0, "rodadas_join": 3,
                 "ocioso": 10.0, "rodadas_ocioso": 3, "janela_escala": 5.0,
                 "aquecimento_escala": 2.0},
    "rapido": {"rodadas": 2, "n_latencia": 1000, "duracao": 0.5, "rodadas_join": 1,
               "ocioso": 3.0, "rodadas_ocioso": 1, "janela_escala": 2.0,
               "aquecimento_escala": 1.0},
}


# ============================================================ o piso: servidor eco

def servidor_eco(porta):
    """Piso: uma thread por conexão; lê uma linha JSON, analisa, imprime uma linha, responde."""
    ouvinte = socket.create_server((IP, porta), backlog=256)
    while True:
        sock, endereco = ouvinte.accept()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=atender_eco, args=(sock, endereco), daemon=True).start()


def atender_eco(sock, endereco):
    cliente = "%s:%d" % endereco[:2]
    arquivo = sock.makefile("rb")
    try:
        while True:
            linha = arquivo.readline()
            if not linha:
                break
            objeto = json.loads(linha)
            # Uma linha de console por requisição, como os servidores do KV (SPEC seção 3).
            print("Cliente %s %s key:%s" % (cliente, objeto.get("tipo"), objeto.get("key")),
                  flush=True)
            sock.sendall(json.dumps(objeto).encode("utf-8") + b"\n")
    except (OSError, ValueError):
        pass
    finally:
        arquivo.close()
        sock.close()


# ============================================================ o gerador de carga
# O mesmo código fala com o eco e com o KV: conexão persistente, TCP_NODELAY, uma linha
# por requisição, espera a linha de resposta e confere o tipo dela.

def linhas_de_pedido(tipo, semente, quantas=256):
    """Pedidos pré-codificados (os mesmos bytes vão ao eco e ao KV)."""
    linhas = []
    for i in range(quantas):
        key = "chave-%04d" % ((semente * 37 + i) % KEYS_BASE)
        if tipo == "GET":
            objeto = {"tipo": "GET", "key": key, "timestamp": 0}
        else:
            objeto = {"tipo": "PUT", "key": key, "value": "valor-%d-%d" % (semente, i)}
        linhas.append(json.dumps(objeto, separators=(",", ":")).encode("utf-8") + b"\n")
    return linhas


def conectar(porta):
    sock = socket.create_connection((IP, porta), timeout=PRAZO)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock, sock.makefile("rb")


def trocar(sock, arquivo, linha, esperado):
    """Uma requisição e sua resposta; resposta de outro tipo é erro do bench."""
    sock.sendall(linha)
    resposta = arquivo.readline()
    tipo = json.loads(resposta)["tipo"] if resposta else None
    if tipo != esperado:
        raise RuntimeError("esperava %s, veio %r" % (esperado, resposta[:200]))


def gerar_latencia(spec):
    """Um cliente, n requisições em sequência; devolve a duração de cada uma (µs).

    Um processo novo por medida, para o KV e para o eco: num processo só, que alternasse os
    dois alvos, o escalonador deixa um deles no mesmo núcleo do cliente e o outro não (numa
    máquina de 2 núcleos, 22 µs contra 65 µs por ida e volta), e a razão mediria isso.
    """
    sock, arquivo = conectar(spec["porta"])
    linhas = linhas_de_pedido(spec["tipo"], spec["semente"])
    for i in range(AQUECIMENTO):
        trocar(sock, arquivo, linhas[i % len(linhas)], spec["esperado"])
    amostras = []
    relogio = time.perf_counter
    for i in range(spec["n"]):
        inicio = relogio()
        trocar(sock, arquivo, linhas[i % len(linhas)], spec["esperado"])
        amostras.append((relogio() - inicio) * 1e6)
    sock.close()
    return {"amostras": amostras}


def gerar_vazao(spec, avisar_pronto, esperar_janela):
    """Várias threads, uma conexão cada; conta as respostas dentro da janela [inicio, fim).

    Todas conectam e aquecem; então o processo avisa que está pronto e recebe a janela, que
    o bench só marca quando todos os geradores estão prontos.
    """
    contagens = []
    erros = []
    prontos = threading.Barrier(spec["threads"] + 1)
    comecar = threading.Event()
    janela = []

    def cliente(semente):
        try:
            sock, arquivo = conectar(spec["porta"])
            linhas = linhas_de_pedido(spec["tipo"], semente)
            for i in range(AQUECIMENTO):
                trocar(sock, arquivo, linhas[i % len(linhas)], spec["esperado"])
        except Exception as erro:  # o bench para e mostra: número errado é pior que nenhum
            erros.append(repr(erro))
            prontos.wait()
            return
        prontos.wait()
        comecar.wait()
        inicio, fim = janela
        try:
            time.sleep(max(0.0, inicio - time.time()))
            na_janela = 0
            i = 0
            while True:
                trocar(sock, arquivo, linhas[i % len(linhas)], spec["esperado"])
                i += 1
                if time.time() >= fim:
                    break
                na_janela += 1
            contagens.append((na_janela, i + AQUECIMENTO))
            sock.close()
        except Exception as erro:
            erros.append(repr(erro))

    threads = [threading.Thread(target=cliente, args=(spec["semente"] * 100 + t,))
               for t in range(spec["threads"])]
    for t in threads:
        t.start()
    prontos.wait()
    avisar_pronto()
    janela.extend(esperar_janela())
    comecar.set()
    for t in threads:
        t.join()
    return {"na_janela": sum(c[0] for c in contagens), "total": sum(c[1] for c in contagens),
            "erros": erros}


def rodar_gerador(spec):
    """Modo --gerador: executa um spec e imprime o resultado numa linha JSON.

    Na vazão, conversa com o bench pelo stdin/stdout: escreve "pronto" e lê "inicio fim".
    """
    if spec["modo"] == "escala":
        rodar_gerador_escala(spec)
        return
    if spec["modo"] == "latencia":
        resultado = gerar_latencia(spec)
    else:
        def avisar_pronto():
            sys.stdout.write("pronto\n")
            sys.stdout.flush()

        def esperar_janela():
            return [float(t) for t in sys.stdin.readline().split()]
        resultado = gerar_vazao(spec, avisar_pronto, esperar_janela)
    sys.stdout.write(json.dumps(resultado) + "\n")


# ============================================================ o gerador da escala
# Milhares de conexões num processo só: um laço de eventos (selectors, sockets não
# bloqueantes), em laço fechado: cada conexão manda um pedido, espera a linha inteira da
# resposta, anota a latência e manda o próximo. Uma thread por conexão no processo que mede
# mediria o gerador (GIL, trocas de thread), não o servidor.

def subir_limite_de_descritores():
    """POSIX: o limite "soft" de descritores sobe até o "hard" (5 000 conexões passam de
    1 024, o "soft" de muitos sistemas). No Windows não há RLIMIT_NOFILE: não faz nada."""
    try:
        import resource
    except ImportError:
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    alvo = hard if hard != resource.RLIM_INFINITY else 1 << 20  # o nr_open padrão do Linux
    if soft == resource.RLIM_INFINITY or soft >= alvo:
        return
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (alvo, hard))
    except (ValueError, OSError):
        pass  # fica o que havia; uma conexão a mais que o limite aparece como falha


def pedido_da_escala(indice, tipo):
    """(linha do pedido, prefixo da resposta certa, tipo certo, key) da conexão indice.

    Cada conexão PUT tem a sua key; as GET leem as keys pré-carregadas. O servidor escreve
    os campos na ordem tipo, key, ...: conferir o começo da linha é barato e confere o tipo e
    a key de verdade (outra formatação cai na análise completa em resposta_certa)."""
    if tipo == "PUT":
        key = "escala-%05d" % indice
        objeto = {"tipo": "PUT", "key": key, "value": "valor-%05d" % indice}
    else:
        key = "chave-%04d" % (indice % KEYS_BASE)
        objeto = {"tipo": "GET", "key": key, "timestamp": 0}
    certo = tipo + "_OK"
    linha = json.dumps(objeto, separators=(",", ":")).encode("utf-8") + b"\n"
    prefixo = json.dumps({"tipo": certo, "key": key}, separators=(",", ":"))[:-1] + ","
    return linha, prefixo.encode("utf-8"), certo, key


def resposta_certa(linha, prefixo, certo, key):
    if linha.startswith(prefixo):
        return True
    try:
        objeto = json.loads(linha)
    except ValueError:
        return False
    return isinstance(objeto, dict) and objeto.get("tipo") == certo and objeto.get("key") == key


class GeradorEscala:
    """As conexões de um processo gerador e o laço de eventos que as usa.

    Falha é tudo o que não é a resposta certa: ERRO ou outro tipo (a conexão segue), connect
    que falha, conexão recusada, fechada ou resetada, resposta a mais, resposta que não chega
    no PRAZO (a conexão sai). Cada falha conta; as primeiras ficam por extenso.
    """

    EXEMPLOS = 5

    def __init__(self, spec):
        self.spec = spec
        self.seletor = selectors.DefaultSelector()
        self.socks = {}        # índice -> socket, só as conexões vivas
        self.pendentes = set()  # índices com pedido sem resposta
        self.enviado = {}      # índice -> perf_counter do envio do pedido
        self.sobra = {}        # índice -> bytes do pedido que o send ainda não levou
        self.parcial = {}      # índice -> começo de uma resposta ainda sem o \n
        self.falhas = 0
        self.exemplos = []

    def falhar(self, indice, texto, fechar):
        self.falhas += 1
        if len(self.exemplos) < GeradorEscala.EXEMPLOS:
            self.exemplos.append(texto if indice is None else "conexão %d: %s" % (indice, texto))
        if fechar and indice in self.socks:
            sock = self.socks.pop(indice)
            self.seletor.unregister(sock)
            sock.close()
            self.pendentes.discard(indice)
            self.sobra.pop(indice, None)
            self.parcial.pop(indice, None)

    def conectar(self):
        """Abre as conexões (antes da medição), repartidas pelas portas: índice % portas."""
        portas = self.spec["portas"]
        primeira = self.spec["primeira"]
        for indice in range(primeira, primeira + self.spec["conexoes"]):
            porta = portas[indice % len(portas)]
            try:
                sock = socket.create_connection((IP, porta), timeout=PRAZO)
            except OSError as erro:
                self.falhar(None, "connect à porta %d: %r" % (porta, erro), False)
                continue
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setblocking(False)
            self.socks[indice] = sock
            self.seletor.register(sock, selectors.EVENT_READ, indice)

    def enviar(self, indice, linha):
        self.enviado[indice] = time.perf_counter()
        try:
            saiu = self.socks[indice].send(linha)
        except BlockingIOError:
            saiu = 0
        except OSError as erro:
            self.falhar(indice, "envio: %r" % erro, True)
            return
        self.pendentes.add(indice)
        if saiu < len(linha):  # raro (o pedido é pequeno): o resto sai quando couber
            self.sobra[indice] = linha[saiu:]
            self.seletor.modify(self.socks[indice], selectors.EVENT_READ | selectors.EVENT_WRITE,
                                indice)

    def continuar_envio(self, indice):
        try:
            saiu = self.socks[indice].send(self.sobra[indice])
        except BlockingIOError:
            return
        except OSError as erro:
            self.falhar(indice, "envio: %r" % erro, True)
            return
        self.sobra[indice] = self.sobra[indice][saiu:]
        if not self.sobra[indice]:
            del self.sobra[indice]
            self.seletor.modify(self.socks[indice], selectors.EVENT_READ, indice)

    def carga(self, tipo, comeco, inicio, fim):
        """Laço fechado de comeco até fim (relógio perf_counter): conta as respostas certas
        completadas em [inicio, fim) e anota as latências delas. Depois de fim nenhum pedido
        novo: espera as respostas que faltam (no máximo PRAZO). comeco = inicio = fim: cada
        conexão faz um pedido só. Anota também quando todas as conexões tiveram a primeira
        resposta (a primeira volta) e quanto a espera depois de fim levou (o dreno)."""
        relogio = time.perf_counter
        pedidos = {indice: pedido_da_escala(indice, tipo) for indice in self.socks}
        self.falhas = 0
        self.exemplos = []
        latencias = []
        na_janela = set()      # conexões com ao menos uma resposta na janela
        respondidas = set()    # conexões com ao menos uma resposta, até a primeira volta
        volta = None
        respostas = 0
        cpu = os.times()
        time.sleep(max(0.0, comeco - relogio()))
        for indice in list(self.socks):
            self.enviar(indice, pedidos[indice][0])
        limite = max(fim, relogio()) + PRAZO
        while self.pendentes:
            if relogio() > limite:
                for indice in list(self.pendentes):
                    self.falhar(indice, "sem resposta em %.0f s" % PRAZO, True)
                break
            for chave, eventos in self.seletor.select(0.5):
                indice = chave.data
                if eventos & selectors.EVENT_WRITE and indice in self.sobra:
                    self.continuar_envio(indice)
                if not eventos & selectors.EVENT_READ or indice not in self.socks:
                    continue
                try:
                    dados = chave.fileobj.recv(65536)
                except BlockingIOError:
                    continue
                except OSError as erro:
                    self.falhar(indice, "recv: %r" % erro, True)
                    continue
                agora = relogio()
                if not dados:
                    self.falhar(indice, "o servidor fechou a conexão", True)
                    continue
                if indice in self.parcial:
                    dados = self.parcial.pop(indice) + dados
                fim_da_linha = dados.find(b"\n")
                if indice not in self.pendentes or 0 <= fim_da_linha < len(dados) - 1:
                    self.falhar(indice, "resposta a mais: %r" % dados[:200], True)
                    continue
                if fim_da_linha < 0:
                    self.parcial[indice] = dados  # o resto da linha vem no próximo recv
                    continue
                self.pendentes.discard(indice)
                if volta is None:
                    respondidas.add(indice)
                    if len(respondidas) >= len(self.socks):
                        volta = agora - comeco
                linha, prefixo, certo, key = pedidos[indice]
                if not resposta_certa(dados, prefixo, certo, key):
                    self.falhar(indice, "resposta errada: %r" % dados[:200], False)
                else:
                    respostas += 1
                    if inicio <= agora < fim:
                        latencias.append(agora - self.enviado[indice])
                        na_janela.add(indice)
                if agora < fim:
                    self.enviar(indice, linha)
        depois = os.times()
        return {"na_janela": len(latencias), "respostas": respostas,
                "primeira_volta": volta, "dreno": max(0.0, relogio() - max(fim, comeco)),
                "latencias": [round(x * 1e6) for x in latencias],
                "sem_resposta_na_janela": len(pedidos) - len(na_janela),
                "falhas": self.falhas, "exemplos": self.exemplos,
                "cpu": (depois[0] - cpu[0]) + (depois[1] - cpu[1]),
                "cpu_usuario": depois[0] - cpu[0]}

    def fechar(self):
        for sock in self.socks.values():
            self.seletor.unregister(sock)
            sock.close()
        self.socks.clear()


def rodar_gerador_escala(spec):
    """Modo --gerador da escala, por linhas no stdin/stdout: conecta e diz quantas abriu;
    então, a cada linha "carga TIPO comeco inicio fim" (time.time()) ou "uma TIPO", roda e
    responde uma linha JSON; "fim" (ou o fim do stdin) fecha tudo."""
    subir_limite_de_descritores()
    gerador = GeradorEscala(spec)
    gerador.conectar()

    def responder(objeto):
        sys.stdout.write(json.dumps(objeto) + "\n")
        sys.stdout.flush()
    responder({"conectadas": len(gerador.socks), "falhas": gerador.falhas,
               "exemplos": gerador.exemplos})
    for linha in sys.stdin:
        partes = linha.split()
        if not partes or partes[0] == "fim":
            break
        if partes[0] == "carga":
            # O relógio de parede só para combinar a janela entre os processos.
            diferenca = time.perf_counter() - time.time()
            comeco, inicio, fim = (float(t) + diferenca for t in partes[2:5])
            responder(gerador.carga(partes[1], comeco, inicio, fim))
        else:
            agora = time.perf_counter()
            responder(gerador.carga(partes[1], agora, agora, agora))
    gerador.fechar()


# ============================================================ processos

class Processo:
    """Um processo filho com stdout e stderr em arquivos (nunca num pipe que ninguém lê).

    Sem -u e sem PYTHONUNBUFFERED, como a pessoa roda: cada linha já sai com
    print(..., flush=True), numa escrita só (sem buffer o print faz duas: o texto e o "\n").
    O eco e o KV rodam do mesmo jeito.
    """

    def __init__(self, args, pasta, nome, cwd):
        self.nome = nome
        self.caminho_saida = os.path.join(pasta, nome + ".out")
        self.caminho_erro = os.path.join(pasta, nome + ".err")
        with open(self.caminho_saida, "wb") as saida, open(self.caminho_erro, "wb") as erro:
            ambiente = dict(os.environ)
            ambiente.pop("PYTHONUNBUFFERED", None)
            # POSIX: o limite "soft" de descritores no "hard" (fase escala: 5 000 conexões).
            antes_do_exec = subir_limite_de_descritores if os.name == "posix" else None
            self.popen = subprocess.Popen([sys.executable] + args, cwd=cwd, stdout=saida,
                                          stderr=erro, stdin=subprocess.DEVNULL, env=ambiente,
                                          preexec_fn=antes_do_exec)
        self.pid = self.popen.pid

    def exigir_vivo(self):
        if self.popen.poll() is not None:
            with open(self.caminho_erro, encoding="utf-8", errors="replace") as f:
                erro = f.read()
            raise RuntimeError("%s terminou (código %s):\n%s"
                               % (self.nome, self.popen.returncode, erro[-2000:]))

    def terminar(self):
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(PRAZO)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(PRAZO)


def porta_livre():
    with socket.socket() as s:
        s.bind((IP, 0))
        return s.getsockname()[1]


def esperar(condicao, motivo, prazo=PRAZO):
    limite = time.monotonic() + prazo
    while True:
        valor = condicao()
        if valor:
            return valor
        if time.monotonic() > limite:
            raise RuntimeError("esperou %.0f s por: %s" % (prazo, motivo))
        time.sleep(SONDA)


def aceita_conexao(porta):
    try:
        with socket.create_connection((IP, porta), timeout=1):
            return True
    except OSError:
        return False


def pedir(porta, objeto, prazo=2.0):
    """Uma requisição numa conexão nova (só para preparar; não é medida)."""
    with socket.create_connection((IP, porta), timeout=prazo) as s:
        s.sendall(json.dumps(objeto).encode("utf-8") + b"\n")
        linha = s.makefile("rb").readline()
    return json.loads(linha) if linha else None


def unido(porta_lider, porta):
    """O seguidor já tem o último PUT do líder: está unido (sonda que vale para o código de hoje
    e para o antigo de --codigo; um GET com ts 0 hoje responde GET_OK em qualquer estado)."""
    try:
        ts = pedir(porta_lider, {"tipo": "PUT", "key": "__sonda__", "value": "x"})["timestamp"]
        resposta = pedir(porta, {"tipo": "GET", "key": "__sonda__", "timestamp": ts})
    except (OSError, TypeError, KeyError):
        return False
    return resposta is not None and resposta.get("tipo") == "GET_OK"


def fixar_processo(pid, cpus):
    """Prende todas as threads do processo (e as que ele criar depois) nestas CPUs (Linux)."""
    for tarefa in os.listdir("/proc/%d/task" % pid):
        try:
            os.sched_setaffinity(int(tarefa), cpus)
        except (ProcessLookupError, FileNotFoundError):
            pass  # uma thread de conexão que acabou de terminar


def p99(ordenadas):
    return ordenadas[min(len(ordenadas) - 1, int(len(ordenadas) * 0.99))]


def cpu_dos(pids):
    """utime + stime (s) da soma dos processos, do SO; None fora do Linux."""
    total = 0
    try:
        for pid in pids:
            with open("/proc/%d/stat" % pid) as f:
                # Depois do ")" do nome, utime e stime são o 12.º e o 13.º campo.
                campos = f.read().rpartition(")")[2].split()
            total += int(campos[11]) + int(campos[12])
    except OSError:
        return None
    return total / os.sysconf("SC_CLK_TCK")


def cpu_das_threads(pid):
    """Tempo de CPU (s) das threads vivas do processo, em ns no /proc/<pid>/task/*/schedstat:
    fino o bastante para um servidor parado (o utime + stime de cpu_dos anda de 10 em 10 ms).
    Não conta threads que terminaram: só serve numa janela em que nenhuma termina."""
    total = 0
    for tarefa in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, tarefa)) as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass  # uma thread que acabou de terminar
    return total / 1e9


def do_status(pid, campo):
    """Um número de /proc/<pid>/status (Linux): VmRSS em KiB, Threads."""
    with open("/proc/%d/status" % pid) as f:
        for linha in f:
            if linha.startswith(campo + ":"):
                return int(linha.split()[1])
    raise RuntimeError("%s não está em /proc/%d/status" % (campo, pid))


def cpu_da_maquina():
    """CPU (s) ocupada da máquina inteira, todos os núcleos, de /proc/stat (Linux)."""
    with open("/proc/stat") as f:
        campos = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal ...: ocupada = tudo menos idle e iowait.
    return (sum(campos[:8]) - campos[3] - campos[4]) / os.sysconf("SC_CLK_TCK")


def linhas_do_arquivo(caminho):
    with open(caminho, "rb") as f:
        return f.read().splitlines()


def esperar_threads(procs, antes):
    """Depois de fechar conexões: espera as threads delas terminarem nos servidores, até o
    número voltar ao de antes (com folga de 2) ou parar de cair por 1 s (um código com um
    conjunto de conexões ao líder guarda algumas)."""
    ultimo = None
    parado_desde = time.monotonic()
    limite = time.monotonic() + PRAZO
    while time.monotonic() < limite:
        agora = [do_status(p.pid, "Threads") for p in procs]
        if all(a <= b + 2 for a, b in zip(agora, antes)):
            return
        if agora != ultimo:
            ultimo, parado_desde = agora, time.monotonic()
        elif time.monotonic() - parado_desde > 1.0:
            return
        time.sleep(0.05)


class Geradores:
    """Processos geradores da escala (um laço de eventos cada), por linhas no stdin/stdout:
    ao subir, cada um abre as suas conexões e responde; depois, um comando por vez."""

    def __init__(self, specs, pasta, nome):
        self.procs = []
        self.erros = []
        for i, spec in enumerate(specs):
            self.erros.append(os.path.join(pasta, "%s-gerador%d.err" % (nome, i)))
            with open(self.erros[-1], "wb") as erro:
                self.procs.append(subprocess.Popen(
                    [sys.executable, os.path.abspath(__file__), "--gerador",
                     json.dumps(dict(spec, modo="escala"))],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=erro, cwd=RAIZ))
        try:
            self.conexao = self.ler()  # as conexões abertas e as que falharam
        except Exception:
            self.fechar()
            raise

    def ler(self):
        resultados = []
        for proc, caminho in zip(self.procs, self.erros):
            linha = proc.stdout.readline()
            if not linha:
                proc.wait(PRAZO)
                with open(caminho, "rb") as f:
                    erro = f.read().decode(errors="replace")
                raise RuntimeError("gerador terminou (código %s):\n%s"
                                   % (proc.returncode, erro[-2000:]))
            resultados.append(json.loads(linha))
        return resultados

    def comando(self, texto):
        for proc in self.procs:
            proc.stdin.write(texto.encode("ascii") + b"\n")
            proc.stdin.flush()
        return self.ler()

    def fechar(self):
        for proc in self.procs:
            try:
                proc.stdin.write(b"fim\n")
                proc.stdin.close()
            except OSError:
                pass  # já terminou
        for proc in self.procs:
            try:
                proc.wait(PRAZO)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            proc.stdout.close()


# ============================================================ o bench

class Bench:
    """Sobe o eco e três servidores, roda as fases e junta os números."""

    def __init__(self, opcoes, pasta, pilha):
        self.opcoes = opcoes
        self.pasta = pasta
        self.pilha = pilha
        self.codigo = os.path.abspath(opcoes.codigo)
        self.contra = os.path.abspath(opcoes.contra) if opcoes.contra else None
        self.nome_referencia = "antes" if self.contra else "eco"
        self.p = dict(PARAMETROS["rapido" if opcoes.rapido else "completo"])
        if opcoes.rodadas:
            self.p["rodadas"] = opcoes.rodadas
        if opcoes.janela:
            self.p["janela_escala"] = opcoes.janela
        self.escala_resultado = None
        self.medidas = {}     # nome -> {"kv": [...], "eco": [...], "razoes": [...]}
        self.tamanho_snapshot = None
        self.cpus_cliente = None   # --fixar: CPUs do cliente da latência

    # ---- processos ----

    def servidor(self, porta, porta_lider, nome, extras=(), codigo=None):
        args = ["Servidor.py", IP, str(porta), IP, str(porta_lider)] + list(extras)
        proc = Processo(args, self.pasta, nome, codigo or self.codigo)
        self.pilha.callback(proc.terminar)

        def pronto():
            proc.exigir_vivo()
            return aceita_conexao(porta)
        esperar(pronto, "%s aceitar conexões" % nome)
        return proc

    def subir(self):
        self.porta_eco = porta_livre()
        self.eco = Processo([os.path.abspath(__file__), "--eco", str(self.porta_eco)],
                            self.pasta, "eco", RAIZ)
        self.pilha.callback(self.eco.terminar)
        esperar(lambda: self.eco.exigir_vivo() or aceita_conexao(self.porta_eco), "eco")
        self.portas, processos = self.cluster("", self.codigo)
        self.lider, self.seguidores = processos[0], processos[1:]
        self.pids_kv = [proc.pid for proc in processos]
        if self.contra:
            # --contra: o outro lado de cada par é um segundo cluster, com o outro código.
            self.portas_contra, self.processos_contra = self.cluster("contra-", self.contra)

    def cluster(self, prefixo, codigo):
        """Líder e dois seguidores unidos, com as keys que os GETs leem: (portas, processos)."""
        portas = [porta_livre() for _ in range(3)]
        processos = [self.servidor(portas[0], portas[0], prefixo + "lider", codigo=codigo)]
        processos += [self.servidor(p, portas[0], "%sseguidor%d" % (prefixo, i), codigo=codigo)
                      for i, p in enumerate(portas[1:], start=1)]
        for porta in portas[1:]:
            esperar(lambda: unido(portas[0], porta), "seguidor %d unir-se ao líder" % porta)
        # As keys que os GETs leem já existem em todos (PUT no líder espera as réplicas).
        self.pre_carregar(portas[0], KEYS_BASE, "valor-%04d-pré-carregado")
        return portas, processos

    def referencia(self, porta):
        """O outro lado do par para um servidor do KV: o eco, ou o mesmo papel no cluster de
        --contra. Devolve (porta, pids cuja CPU conta, processo que atende)."""
        if not self.contra:
            return self.porta_eco, [self.eco.pid], self.eco
        indice = self.portas.index(porta)
        return (self.portas_contra[indice], [proc.pid for proc in self.processos_contra],
                self.processos_contra[indice])

    def pre_carregar(self, porta, quantas, modelo, lote=500):
        """PUTs em lotes pela mesma conexão (pipeline): o protocolo responde em ordem."""
        sock, arquivo = conectar(porta)
        for inicio in range(0, quantas, lote):
            fim = min(quantas, inicio + lote)
            sock.sendall(b"".join(
                json.dumps({"tipo": "PUT", "key": "chave-%04d" % i, "value": modelo % i},
                           ensure_ascii=False).encode("utf-8") + b"\n"
                for i in range(inicio, fim)))
            for _ in range(inicio, fim):
                resposta = arquivo.readline()
                if json.loads(resposta)["tipo"] != "PUT_OK":
                    raise RuntimeError("pré-carga: resposta %r" % resposta[:200])
        sock.close()

    def geradores(self, specs, duracao=None, cpus=None):
        """Roda os geradores (um processo cada) e devolve os resultados.

        Com duracao (vazão): espera todos dizerem "pronto" e só então marca a mesma janela
        de duracao segundos para todos.
        """
        procs = []
        for i, spec in enumerate(specs):
            with open(os.path.join(self.pasta, "gerador%d.err" % i), "wb") as erro:
                procs.append(subprocess.Popen(
                    [sys.executable, os.path.abspath(__file__), "--gerador", json.dumps(spec)],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=erro, cwd=RAIZ))
            if cpus:
                fixar_processo(procs[-1].pid, cpus)
        try:
            if duracao is not None:
                for proc in procs:
                    if proc.stdout.readline() != b"pronto\n":
                        raise RuntimeError("gerador não ficou pronto")
                inicio = time.time() + 0.05
                for proc in procs:
                    proc.stdin.write(b"%r %r\n" % (inicio, inicio + duracao))
                    proc.stdin.flush()
            resultados = []
            for i, proc in enumerate(procs):
                saida = proc.stdout.read()
                if proc.wait(PRAZO) != 0 or not saida:
                    with open(os.path.join(self.pasta, "gerador%d.err" % i), "rb") as f:
                        erro = f.read().decode(errors="replace")
                    raise RuntimeError("gerador falhou:\n%s" % erro)
                resultado = json.loads(saida)
                if resultado.get("erros"):
                    raise RuntimeError("gerador: %s" % resultado["erros"][:3])
                resultados.append(resultado)
            return resultados
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
                proc.stdin.close()
                proc.stdout.close()

    def servidor_da_porta(self, porta):
        return ([self.lider] + self.seguidores)[self.portas.index(porta)]

    def anotar(self, nome, kv, eco):
        medida = self.medidas.setdefault(nome, {"kv": [], "eco": [], "razoes": []})
        medida["kv"].append(kv)
        medida["eco"].append(eco)
        medida["razoes"].append(kv / eco if eco else None)

    def pares(self, rodar_kv, rodar_eco):
        """Rodadas de pares seguidos; a ordem alterna para o viés de ordem também se anular."""
        for rodada in range(self.p["rodadas"]):
            if rodada % 2 == 0:
                kv = rodar_kv()
                eco = rodar_eco()
            else:
                eco = rodar_eco()
                kv = rodar_kv()
            yield kv, eco

    def fixar(self, alvo):
        """--fixar: o eco e o servidor que atende o cliente na última CPU, os outros nas demais
        (com --contra, também o servidor do mesmo papel no outro cluster).

        O cliente da latência também vai para as demais: a ida e volta é sempre entre núcleos,
        igual para o KV e o eco. Os geradores de vazão ficam livres.

        Sem isso, numa VM o escalonador espalha as threads de um servidor pelos núcleos e cada
        troca do GIL vira um despertar entre núcleos; a vazão muda até 2x entre rodadas.
        """
        if not self.opcoes.fixar:
            return
        ultima = {os.cpu_count() - 1}
        self.cpus_cliente = set(range(os.cpu_count() - 1)) or ultima
        kv = [self.lider] + self.seguidores
        alvo_referencia = self.referencia(self.portas[kv.index(alvo)])[2]
        outros = [] if not self.contra else self.processos_contra
        for proc in kv + outros + [self.eco]:
            fixar_processo(proc.pid, ultima if proc in (alvo, alvo_referencia, self.eco)
                           else self.cpus_cliente)

    # ---- fases ----

    def latencias(self):
        """Latência com um cliente: rodadas de pares (KV, eco ou --contra) seguidos."""
        casos = [("GET no seguidor", "GET", self.portas[1], "GET_OK"),
                 ("PUT no líder", "PUT", self.portas[0], "PUT_OK"),
                 ("PUT no seguidor", "PUT", self.portas[2], "PUT_OK")]
        for nome, tipo, porta, esperado in casos:
            self.fixar(self.servidor_da_porta(porta))

            def medir(porta, esperado):
                spec = {"modo": "latencia", "porta": porta, "tipo": tipo, "esperado": esperado,
                        "semente": 7, "n": self.p["n_latencia"]}
                amostras = sorted(self.geradores([spec], cpus=self.cpus_cliente)[0]["amostras"])
                return statistics.median(amostras), p99(amostras)
            porta_ref = self.referencia(porta)[0]
            esperado_ref = esperado if self.contra else tipo  # o eco devolve o pedido
            for kv, eco in self.pares(lambda: medir(porta, esperado),
                                      lambda: medir(porta_ref, esperado_ref)):
                self.anotar("latência %s, mediana" % nome, kv[0], eco[0])
                self.anotar("latência %s, p99" % nome, kv[1], eco[1])
            self.mostrar_progresso("latência %s" % nome)

    def medir_vazao(self, porta, tipo, esperado, clientes, pids):
        """(requisições/s na janela, µs de CPU dos pids por requisição) com tantos clientes."""
        processos = min(clientes, MAX_PROCESSOS)
        # clientes repartidos entre os processos: 32 = 8 processos x 4 threads.
        specs = [{"modo": "vazao", "porta": porta, "tipo": tipo, "esperado": esperado,
                  "semente": i, "threads": clientes // processos + (i < clientes % processos)}
                 for i in range(processos)]
        cpu_antes = cpu_dos(pids)
        resultados = self.geradores(specs, self.p["duracao"])
        cpu_depois = cpu_dos(pids)
        # CPU do SO por requisição: todas as feitas, aquecimento incluído.
        total = sum(r["total"] for r in resultados)
        cpu = None if cpu_antes is None else (cpu_depois - cpu_antes) / total * 1e6
        return sum(r["na_janela"] for r in resultados) / self.p["duracao"], cpu

    def vazoes(self):
        casos = [("GET", self.portas[1], "GET_OK"), ("PUT", self.portas[0], "PUT_OK")]
        for tipo, porta, esperado in casos:
            self.fixar(self.servidor_da_porta(porta))
            for clientes in self.opcoes.clientes:
                def medir(porta, esperado, pids):
                    return self.medir_vazao(porta, tipo, esperado, clientes, pids)
                porta_ref, pids_ref = self.referencia(porta)[:2]
                esperado_ref = esperado if self.contra else tipo
                for kv, eco in self.pares(lambda: medir(porta, esperado, self.pids_kv),
                                          lambda: medir(porta_ref, esperado_ref, pids_ref)):
                    self.anotar("vazão %s, %d clientes" % (tipo, clientes), kv[0], eco[0])
                    if clientes == 8 and kv[1] is not None:
                        self.anotar("CPU por %s (3 servidores), 8 clientes" % tipo, kv[1], eco[1])
                self.mostrar_progresso("vazão %s com %d clientes" % (tipo, clientes))

    def ocioso(self):
        """Servidores parados: a CPU do que mais gasta, por segundo, em p["ocioso"] segundos
        sem pedido nenhum (os dois lados ao mesmo tempo); e, logo depois, quanto a linha de
        um GET leva para aparecer no console do seguidor (o Console olha a fila mais devagar
        quando nada acontece)."""
        if not os.path.isdir("/proc/self/task"):
            self.mostrar_progresso("fase ocioso pulada: ela lê a CPU do /proc (Linux)")
            return
        segundos = self.p["ocioso"]
        kv = [self.lider] + self.seguidores
        referencia = self.processos_contra if self.contra else [self.eco]
        for _ in range(self.p["rodadas_ocioso"]):
            antes = {proc.pid: cpu_das_threads(proc.pid) for proc in kv + referencia}
            time.sleep(segundos)  # a janela medida: ninguém fala com os servidores

            def maior(processos):
                return max(cpu_das_threads(p.pid) - antes[p.pid]
                           for p in processos) / segundos * 1e3
            self.anotar("ocioso: CPU do servidor que mais gasta", maior(kv), maior(referencia))
            porta_ref, _, proc_ref = self.referencia(self.portas[1])
            self.anotar("ocioso: linha de um GET no console, depois do silêncio",
                        self.primeira_linha(self.seguidores[0], self.portas[1]),
                        self.primeira_linha(proc_ref, porta_ref))
        self.mostrar_progresso("servidores ociosos")

    @staticmethod
    def primeira_linha(proc, porta):
        """ms entre mandar um GET e o stdout do processo crescer (a linha do pedido)."""
        tamanho = os.path.getsize(proc.caminho_saida)
        inicio = time.perf_counter()
        pedir(porta, {"tipo": "GET", "key": "chave-0000", "timestamp": 0})
        esperar(lambda: os.path.getsize(proc.caminho_saida) > tamanho, "a linha do GET")
        return (time.perf_counter() - inicio) * 1e3

    def disco(self):
        """PUT com 8 clientes no cluster sem disco e em dois iguais cujo líder grava o registro
        (--dados, e --dados --fsync), em rodadas seguidas: cada número sai como razão ao sem
        disco da mesma rodada."""
        lideres = {}
        for nome, extras in (("dados", []), ("fsync", ["--fsync"])):
            portas = [porta_livre() for _ in range(3)]
            pasta = os.path.join(self.pasta, "registro-%s" % nome)
            procs = [self.servidor(portas[0], portas[0], "lider-" + nome,
                                   ["--dados", pasta] + extras)]
            procs += [self.servidor(p, portas[0], "seguidor-%s%d" % (nome, i))
                      for i, p in enumerate(portas[1:], start=1)]
            for porta in portas[1:]:
                esperar(lambda: unido(portas[0], porta), "seguidor %d unir-se ao líder" % porta)
            lideres[nome] = (portas[0], [proc.pid for proc in procs])
        for _ in range(self.p["rodadas"]):
            memoria = self.medir_vazao(self.portas[0], "PUT", "PUT_OK", 8, self.pids_kv)[0]
            for nome, rotulo in (("dados", "--dados"), ("fsync", "--dados --fsync")):
                porta, pids = lideres[nome]
                com_disco = self.medir_vazao(porta, "PUT", "PUT_OK", 8, pids)[0]
                self.anotar("vazão PUT, 8 clientes, %s (razão: ao sem disco)" % rotulo,
                            com_disco, memoria)
        self.mostrar_progresso("PUT com registro em disco")

    def join(self):
        """JOIN a um líder com N keys: troca medida no bench e um seguidor novo de verdade."""
        n = self.opcoes.keys_join
        porta = porta_livre()
        lider = self.servidor(porta, porta, "lider-join")
        inicio = time.monotonic()
        self.pre_carregar(porta, n, "valor-%06d-com-16b")
        self.mostrar_progresso("pré-carga de %d keys (%.1f s)" % (n, time.monotonic() - inicio))
        sys.path.insert(0, self.codigo)
        from Mensagem import Mensagem
        ultima = "chave-%04d" % (n - 1)
        for rodada in range(self.p["rodadas_join"]):
            # (1) A troca JOIN -> JOIN_OK, do lado do bench, com o Mensagem do código medido:
            # até a última byte chegar, e até o snapshot estar analisado e virar tabela.
            sock, arquivo = conectar(porta)
            t0 = time.perf_counter()
            Mensagem(Mensagem.JOIN, origem="%s:%d" % (IP, porta_livre())).enviar(sock)
            linha = arquivo.readline(Mensagem.LIMITE_LINHA + 1)
            t1 = time.perf_counter()
            resposta = Mensagem.de_linha(linha)
            tabela = {key: (value, ts) for key, (value, ts) in resposta.dados.items()}
            t2 = time.perf_counter()
            sock.close()
            if len(tabela) != n or resposta.timestamp != n:
                raise RuntimeError("JOIN_OK com %d keys, ts %s" % (len(tabela), resposta.timestamp))
            self.tamanho_snapshot = len(linha)
            # Piso: o eco recebe uma linha do tamanho do snapshot, analisa e a devolve.
            sock, arquivo = conectar(self.porta_eco)
            t3 = time.perf_counter()
            sock.sendall(linha)
            json.loads(arquivo.readline())
            t4 = time.perf_counter()
            sock.close()
            self.anotar("JOIN: troca no bench, até o último byte", t1 - t0, t4 - t3)
            self.anotar("JOIN: troca no bench, até a tabela pronta", t2 - t0, t4 - t3)
            # (2) Um seguidor novo, processo de verdade: da porta dele aceitar conexão (o canal
            # com o líder abre logo em seguida) até responder GET_OK da última key com ts n.
            # As sondagens a cada SONDA segundos somam no máximo uns 2 ms ao número.
            porta_seguidor = porta_livre()
            t_processo = time.perf_counter()
            seguidor = Processo(["Servidor.py", IP, str(porta_seguidor), IP, str(porta)],
                                self.pasta, "seguidor-join%d" % rodada, self.codigo)
            self.pilha.callback(seguidor.terminar)
            esperar(lambda: seguidor.exigir_vivo() or aceita_conexao(porta_seguidor), "porta")
            t5 = time.perf_counter()
            sock, arquivo = conectar(porta_seguidor)
            linha_get = json.dumps({"tipo": "GET", "key": ultima, "timestamp": n}).encode() + b"\n"

            def chegou():
                sock.sendall(linha_get)
                return json.loads(arquivo.readline())["tipo"] == "GET_OK"
            esperar(chegou, "seguidor novo ter a última key")
            t6 = time.perf_counter()
            sock.close()
            seguidor.terminar()
            self.anotar("JOIN: seguidor novo, porta aberta até GET_OK da última key",
                        t6 - t5, t4 - t3)
            self.anotar("JOIN: seguidor novo, processo criado até GET_OK da última key",
                        t6 - t_processo, t4 - t3)
        self.mostrar_progresso("JOIN")
        lider.terminar()

    def escala(self):
        """Curva de escala: vazão e latência de PUT e de GET com N conexões persistentes,
        divididas por igual entre os três servidores de um cluster próprio, abertas antes de
        medir; e, antes da curva, a memória por conexão ociosa."""
        if not os.path.isdir("/proc/self/task"):
            self.mostrar_progresso("fase escala pulada: ela lê a memória e as threads do /proc")
            return
        inicio = time.monotonic()
        carga = os.getloadavg()  # antes de subir o cluster desta fase (uptime)
        portas, procs = self.cluster("escala-", self.codigo)
        memoria = self.memoria_ociosa(portas, procs)
        pontos = []
        for clientes in self.opcoes.escala:
            for tipo in ("PUT", "GET"):
                pontos.append(self.ponto_escala(portas, procs, clientes, tipo))
        for proc in procs:
            proc.terminar()
        self.escala_resultado = {
            "clientes": self.opcoes.escala, "janela": self.p["janela_escala"],
            "aquecimento": self.p["aquecimento_escala"], "geradores": GERADORES_ESCALA,
            "carga": carga,
            "segundos": time.monotonic() - inicio, "memoria": memoria, "pontos": pontos}

    def memoria_ociosa(self, portas, procs):
        """RSS de cada servidor sem conexões e com n conexões ociosas nele, cada uma depois
        de um GET; então cada conexão do seguidor 1 faz um PUT (que ele encaminha ao líder):
        de novo o RSS dele e o do líder. KiB por conexão = diferença / n."""
        n = self.opcoes.ociosas
        erros_antes = [len(linhas_do_arquivo(p.caminho_erro)) for p in procs]
        threads_antes = [do_status(p.pid, "Threads") for p in procs]
        sem = [do_status(p.pid, "VmRSS") for p in procs]
        # Um gerador com as do líder e do seguidor 2, outro com as do seguidor 1 (só elas
        # fazem o PUT).
        outros = Geradores([{"portas": [portas[0], portas[2]], "primeira": 0, "conexoes": 2 * n}],
                           self.pasta, "memoria-a")
        try:
            seguidor = Geradores([{"portas": [portas[1]], "primeira": 0, "conexoes": n}],
                                 self.pasta, "memoria-b")
            try:
                resultados = outros.conexao + seguidor.conexao
                resultados += outros.comando("uma GET") + seguidor.comando("uma GET")
                com_get = [do_status(p.pid, "VmRSS") for p in procs]
                resultados += seguidor.comando("uma PUT")
                com_put = [do_status(p.pid, "VmRSS") for p in procs]
            finally:
                seguidor.fechar()
        finally:
            outros.fechar()
        esperar_threads(procs, threads_antes)
        falhas, exemplos = juntar_falhas(resultados)
        stderr = [linhas_do_arquivo(p.caminho_erro)[antes:] for p, antes in zip(procs, erros_antes)]
        memoria = {"conexoes": n, "rss_sem": sem, "rss_com_get": com_get, "rss_com_put": com_put,
                   "kib_por_conexao_get": [(c - s) / n for c, s in zip(com_get, sem)],
                   "kib_seguidor_com_put": (com_put[1] - sem[1]) / n,
                   "kib_lider_por_put_encaminhado": (com_put[0] - com_get[0]) / n,
                   "falhas": falhas, "exemplos": exemplos,
                   "linhas_stderr": [len(linhas) for linhas in stderr],
                   "exemplos_stderr": exemplos_stderr(stderr)}
        self.mostrar_progresso("memória por conexão ociosa (%d em cada servidor): %s KiB; "
                               "seguidor 1 depois de um PUT: %.1f KiB, líder +%.1f KiB"
                               % (n, ", ".join("%.1f" % k for k in memoria["kib_por_conexao_get"]),
                                  memoria["kib_seguidor_com_put"],
                                  memoria["kib_lider_por_put_encaminhado"]))
        return memoria

    def ponto_escala(self, portas, procs, clientes, tipo):
        """Um ponto da curva: clientes conexões (índice i no servidor i % 3), repartidas entre
        os geradores; aquecimento, e a janela medida, a mesma em todos os geradores."""
        quantos = min(GERADORES_ESCALA, clientes)
        specs = []
        for g in range(quantos):
            primeira = clientes * g // quantos
            specs.append({"portas": portas, "primeira": primeira,
                          "conexoes": clientes * (g + 1) // quantos - primeira})
        erros_antes = [len(linhas_do_arquivo(p.caminho_erro)) for p in procs]
        threads_antes = [do_status(p.pid, "Threads") for p in procs]
        pids = [p.pid for p in procs]
        t_conectar = time.monotonic()
        geradores = Geradores(specs, self.pasta, "escala-%d-%s" % (clientes, tipo))
        try:
            conectar = time.monotonic() - t_conectar
            # Um pedido por conexão antes de medir: toda conexão já foi aceita e tem a sua
            # thread no servidor (e, no seguidor, a do encaminhamento); a janela mede o regime,
            # não a chegada de milhares de conexões. As falhas desta volta também contam.
            t_volta = time.monotonic()
            primeira = geradores.comando("uma %s" % tipo)
            primeira_volta = time.monotonic() - t_volta
            comeco = time.time() + 0.1
            inicio = comeco + self.p["aquecimento_escala"]
            fim = inicio + self.p["janela_escala"]
            cpu_antes, maquina_antes = cpu_dos(pids), cpu_da_maquina()
            t_carga = time.monotonic()
            carga = geradores.comando("carga %s %r %r %r" % (tipo, comeco, inicio, fim))
            duracao = time.monotonic() - t_carga
            cpu_servidores = (cpu_dos(pids) - cpu_antes) / duracao
            cpu_maquina = (cpu_da_maquina() - maquina_antes) / duracao
        finally:
            geradores.fechar()
        esperar_threads(procs, threads_antes)
        falhas, exemplos = juntar_falhas(geradores.conexao + primeira + carga)
        stderr = [linhas_do_arquivo(p.caminho_erro)[antes:] for p, antes in zip(procs, erros_antes)]
        latencias = sorted(x for r in carga for x in r["latencias"])
        ponto = {"clientes": clientes, "tipo": tipo,
                 "vazao": sum(r["na_janela"] for r in carga) / self.p["janela_escala"],
                 "p50_ms": statistics.median(latencias) / 1e3 if latencias else None,
                 "p99_ms": p99(latencias) / 1e3 if latencias else None,
                 "falhas": falhas, "exemplos": exemplos,
                 "linhas_stderr": [len(linhas) for linhas in stderr],
                 "exemplos_stderr": exemplos_stderr(stderr),
                 "sem_resposta_na_janela": sum(r["sem_resposta_na_janela"] for r in carga),
                 "cpu_servidores": cpu_servidores,
                 "cpu_geradores": sum(r["cpu"] for r in carga) / duracao,
                 "cpu_geradores_usuario": sum(r["cpu_usuario"] for r in carga) / duracao,
                 "conectar_s": conectar, "respostas": sum(r["respostas"] for r in carga),
                 "dreno_s": max(r["dreno"] for r in carga)}
        ponto["primeira_volta_s"] = primeira_volta
        # O resto da CPU ocupada da máquina: outras pessoas e o kernel (softirq).
        ponto["cpu_resto"] = max(0.0, cpu_maquina - cpu_servidores - ponto["cpu_geradores"])
        self.mostrar_progresso(
            "escala %s, %d clientes: %.0f req/s, p50 %s ms, p99 %s ms, %d falhas, %d linhas em "
            "stderr (conectar %.1f s)"
            % (tipo, clientes, ponto["vazao"], formatar_ms(ponto["p50_ms"]),
               formatar_ms(ponto["p99_ms"]), falhas, sum(ponto["linhas_stderr"]), conectar))
        return ponto

    # ---- saída ----

    def mostrar_progresso(self, texto):
        print("  ... %s" % texto, file=sys.stderr, flush=True)

    def resumo(self):
        """nome -> {kv, eco, razao} (medianas) e o veredito de cada meta."""
        resumo = {}
        for nome, m in self.medidas.items():
            razoes = [r for r in m["razoes"] if r is not None]  # sem razão: a referência deu 0
            resumo[nome] = {"kv": statistics.median(m["kv"]), "eco": statistics.median(m["eco"]),
                            "razao": statistics.median(razoes) if razoes else None,
                            "rodadas": m}
        return resumo


# Metas da issue #4: nome -> (sobre "razao" ou "kv", comparação, limite, texto).
METAS = [
    ("latência GET no seguidor, mediana", "razao", "<=", 1.2, "razão ≤ 1,2"),
    ("latência PUT no líder, mediana", "razao", "<=", 2.5, "razão ≤ 2,5"),
    ("latência PUT no seguidor, mediana", "razao", "<=", 3.5, "razão ≤ 3,5"),
    ("vazão GET, 8 clientes", "razao", ">=", 0.8, "razão ≥ 0,8"),
    ("vazão PUT, 8 clientes", "razao", ">=", 0.35, "razão ≥ 0,35"),
    ("CPU por GET (3 servidores), 8 clientes", "kv", "<=", 60.0, "≤ 60 µs"),
    ("CPU por PUT (3 servidores), 8 clientes", "kv", "<=", 300.0, "≤ 300 µs"),
    ("JOIN: seguidor novo, porta aberta até GET_OK da última key", "kv", "<", 1.0, "< 1 s"),
    # Issue do registro em disco: com --dados e sem --fsync, no máximo 15% abaixo do sem disco.
    ("vazão PUT, 8 clientes, --dados (razão: ao sem disco)", "razao", ">=", 0.85, "razão ≥ 0,85"),
]


# Issue #16: um servidor parado quase não gasta CPU, e a linha depois do silêncio não demora.
METAS_OCIOSO = [
    ("ocioso: CPU do servidor que mais gasta", "kv", "<=", 3.0, "≤ 3 ms/s"),
    ("ocioso: linha de um GET no console, depois do silêncio", "kv", "<=", 250.0, "≤ 250 ms"),
]
METAS += METAS_OCIOSO
# Com --contra PASTA (issue #16, contra o código de c81a006): razão hoje/antes por rodada.
METAS_CONTRA = METAS_OCIOSO + [
    ("latência PUT no líder, mediana", "razao", "<=", 0.9, "razão ≤ 0,9"),
    ("CPU por PUT (3 servidores), 8 clientes", "razao", "<=", 0.9, "razão ≤ 0,9"),
    ("vazão PUT, 8 clientes", "razao", ">=", 1.1, "razão ≥ 1,1"),
]


def unidade(nome):
    if nome.startswith("ocioso"):
        return ("ms/s" if "CPU" in nome else "ms"), 1.0
    if nome.startswith("latência") or nome.startswith("CPU"):
        return "µs", 1.0
    if nome.startswith("vazão"):
        return "req/s", 1.0
    return "ms", 1000.0


def formatar(valor):
    return "%.0f" % valor if abs(valor) >= 100 else "%.1f" % valor


def cumpre(resumo, meta):
    nome, campo, comparacao, limite, _ = meta
    valor = resumo[nome][campo]
    if valor is None:
        return False
    return {"<=": valor <= limite, ">=": valor >= limite, "<": valor < limite}[comparacao]


def tabela(resumo, referencia="eco"):
    """A tabela: mediana do KV, mediana da referência (o eco, ou o código de --contra), mediana
    das razões por rodada com o menor e o maior valor, meta."""
    linhas = ["%-68s %9s %9s %7s %11s  %s" % ("medida", "KV", referencia, "KV/" + referencia,
                                               "(min-max)", "meta")]
    metas = {m[0]: m for m in (METAS_CONTRA if referencia == "antes" else METAS)}
    for nome, r in resumo.items():
        nome_unidade, fator = unidade(nome)
        meta = metas.get(nome)
        veredito = "" if meta is None else "%s: %s" % (meta[4], "ok" if cumpre(resumo, meta)
                                                         else "NÃO")
        razoes = [x for x in r["rodadas"]["razoes"] if x is not None]
        linhas.append("%-68s %9s %9s %7s %11s  %s" % (
            "%s (%s)" % (nome, nome_unidade), formatar(r["kv"] * fator),
            formatar(r["eco"] * fator), "-" if r["razao"] is None else "%.2f" % r["razao"],
            "%.2f-%.2f" % (min(razoes), max(razoes)) if razoes else "-", veredito))
    return "\n".join(linhas)


# ---- a fase escala: falhas, tabela, metas ----

NOMES_ESCALA = ("líder", "seguidor 1", "seguidor 2")


def juntar_falhas(resultados):
    """(número de falhas, as primeiras por extenso) de vários resultados de geradores."""
    exemplos = [e for r in resultados for e in r["exemplos"]]
    return sum(r["falhas"] for r in resultados), exemplos[:GeradorEscala.EXEMPLOS]


def exemplos_stderr(stderr, quantas=2):
    """As primeiras linhas que cada servidor escreveu em stderr (toda linha lá é de erro)."""
    return ["%s: %s" % (nome, linha.decode("utf-8", "replace"))
            for nome, linhas in zip(NOMES_ESCALA, stderr) for linha in linhas[:quantas]]


def formatar_ms(valor):
    if valor is None:
        return "-"
    return "%.0f" % valor if valor >= 100 else "%.1f" % valor if valor >= 10 else "%.2f" % valor


def melhor_vazao(pontos, tipo):
    return max([p["vazao"] for p in pontos if p["tipo"] == tipo] or [0])


def metas_escala(resultado):
    """[(texto, valor medido, ok)]: vazão em 1 000 e 5 000 clientes perto da melhor da curva,
    p99 em 1 000 clientes até 5x o p50, e nenhuma falha em ponto nenhum."""
    pontos = {(p["tipo"], p["clientes"]): p for p in resultado["pontos"]}
    metas = []
    for tipo in ("PUT", "GET"):
        melhor = melhor_vazao(resultado["pontos"], tipo)
        for clientes, minimo in ((1000, 0.85), (5000, 0.75)):
            ponto = pontos.get((tipo, clientes))
            texto = "vazão %s com %d clientes ≥ %.0f%% da melhor da curva" % (
                tipo, clientes, minimo * 100)
            if ponto is None or not melhor:
                metas.append((texto, "sem o ponto", False))
            else:
                razao = ponto["vazao"] / melhor
                metas.append((texto, "%.0f%%" % (razao * 100), razao >= minimo))
        ponto = pontos.get((tipo, 1000))
        texto = "p99 de %s com 1000 clientes ≤ 5x o p50" % tipo
        if ponto is None or not ponto["p50_ms"]:
            metas.append((texto, "sem o ponto", False))
        else:
            razao = ponto["p99_ms"] / ponto["p50_ms"]
            metas.append((texto, "%.1fx" % razao, razao <= 5.0))
    falhas = sum(p["falhas"] + sum(p["linhas_stderr"]) for p in resultado["pontos"])
    memoria = resultado["memoria"]
    falhas += memoria["falhas"] + sum(memoria["linhas_stderr"])
    metas.append(("nenhuma falha em ponto nenhum (pedidos e linhas em stderr, memória incluída)",
                  "%d" % falhas, falhas == 0))
    return metas


def tabela_escala(resultado):
    """O texto da fase escala: a curva, as falhas por extenso, a memória, as metas."""
    carga = "carga da máquina antes da fase (uptime, 1/5/15 min) %s" % (
        "/".join("%.2f" % x for x in resultado["carga"]))
    linhas = ["Escala: N conexões persistentes, divididas entre líder e 2 seguidores, laço "
              "fechado; %d geradores; aquecimento %g s, janela %g s; %s; %.0f s"
              % (resultado["geradores"], resultado["aquecimento"], resultado["janela"], carga,
                 resultado["segundos"]),
              "%-4s %8s %8s %6s %8s %8s %7s %7s %13s" % (
                  "tipo", "clientes", "req/s", "melhor", "p50 ms", "p99 ms", "p99/p50", "falhas",
                  "stderr L/S1/S2")]
    for p in resultado["pontos"]:
        melhor = melhor_vazao(resultado["pontos"], p["tipo"])
        linhas.append("%-4s %8d %8.0f %5.0f%% %8s %8s %7s %7d %13s" % (
            p["tipo"], p["clientes"], p["vazao"], p["vazao"] / melhor * 100 if melhor else 0,
            formatar_ms(p["p50_ms"]), formatar_ms(p["p99_ms"]),
            "%.1f" % (p["p99_ms"] / p["p50_ms"]) if p["p50_ms"] else "-", p["falhas"],
            "/".join(str(n) for n in p["linhas_stderr"])))
    # Para entender a curva: quanto levou abrir as conexões, a primeira resposta de todas
    # (contada do começo da carga: maior que o aquecimento, a janela pegou o arranque), a
    # espera pelas respostas depois da janela, as conexões sem resposta nela, e a CPU de cada
    # um (% de um núcleo). "resto" é a CPU ocupada da máquina fora dos servidores e dos
    # geradores: outras pessoas (a máquina é dividida) e o kernel fora de qualquer processo
    # (softirq da rede, parte dela nossa).
    linhas.append("%-4s %8s %11s %12s %8s %10s %9s %14s %10s" % (
        "tipo", "clientes", "conectar s", "1ª volta s", "dreno s", "sem resp.", "CPU serv",
        "CPU ger (usr)", "CPU resto"))
    for p in resultado["pontos"]:
        linhas.append("%-4s %8d %11.1f %12s %8.1f %10d %8.0f%% %14s %9.0f%%" % (
            p["tipo"], p["clientes"], p["conectar_s"],
            "-" if p["primeira_volta_s"] is None else "%.1f" % p["primeira_volta_s"],
            p["dreno_s"], p["sem_resposta_na_janela"], p["cpu_servidores"] * 100,
            "%.0f%% (%.0f%%)" % (p["cpu_geradores"] * 100, p["cpu_geradores_usuario"] * 100),
            p["cpu_resto"] * 100))
    for p in resultado["pontos"]:
        for texto in p["exemplos"] + p["exemplos_stderr"]:
            linhas.append("  falha em %s com %d clientes: %s" % (p["tipo"], p["clientes"], texto))
    m = resultado["memoria"]
    linhas.append("Memória por conexão ociosa (RSS, %d conexões em cada servidor, cada uma depois "
                  "de um GET): %s" % (m["conexoes"], ", ".join(
                      "%s %.1f KiB" % (nome, kib)
                      for nome, kib in zip(NOMES_ESCALA, m["kib_por_conexao_get"]))))
    linhas.append("Depois de um PUT em cada conexão do seguidor 1 (ele encaminha ao líder): "
                  "seguidor 1 %.1f KiB por conexão; líder +%.1f KiB por PUT encaminhado"
                  % (m["kib_seguidor_com_put"], m["kib_lider_por_put_encaminhado"]))
    for texto in m["exemplos"] + m["exemplos_stderr"]:
        linhas.append("  falha na medida da memória: %s" % texto)
    for texto, valor, ok in metas_escala(resultado):
        linhas.append("meta: %s: %s, %s" % (texto, valor, "ok" if ok else "NÃO"))
    return "\n".join(linhas)


def medir_com_perfil(bench, pasta_perfil, fase):
    """Roda uma fase com py-spy gravando cada servidor: PASTA/<nome>.txt, pilhas "a;b;c N"."""
    if shutil.which("py-spy") is None:
        print("py-spy não encontrado (pip install py-spy): sem perfil", file=sys.stderr)
        return fase()
    os.makedirs(pasta_perfil, exist_ok=True)
    gravadores = []
    for nome, pid in [("lider", bench.lider.pid), ("seguidor1", bench.seguidores[0].pid),
                      ("seguidor2", bench.seguidores[1].pid), ("eco", bench.eco.pid)]:
        destino = os.path.join(pasta_perfil, nome + ".txt")
        gravadores.append(subprocess.Popen(
            # --gil: só amostras da thread com o GIL, isto é, onde o Python gasta tempo.
            ["py-spy", "record", "--pid", str(pid), "--format", "raw", "--rate", "200", "--gil",
             "-o", destino], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    time.sleep(1.0)  # o py-spy leva um instante para se ligar ao processo
    try:
        return fase()
    finally:
        for g in gravadores:
            g.send_signal(signal.SIGINT)  # o py-spy grava o arquivo e sai
            g.wait(PRAZO)


def inteiros(texto):
    return [int(parte) for parte in texto.split(",")]


def principal(argv):
    analisador = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    analisador.add_argument("--json", metavar="ARQUIVO", help="grava os números neste arquivo")
    analisador.add_argument("--rapido", action="store_true", help="rodada curta (< 1 min)")
    analisador.add_argument("--codigo", default=RAIZ, metavar="PASTA",
                            help="pasta com Servidor.py e Mensagem.py (padrão: o repositório)")
    analisador.add_argument("--contra", metavar="PASTA",
                            help="o outro lado de cada par é um cluster com o Servidor.py e o "
                                 "Mensagem.py desta pasta, no lugar do eco (fases latencia, "
                                 "vazao e ocioso)")
    analisador.add_argument("--rodadas", type=int, help="pares KV/eco por medida")
    analisador.add_argument("--keys-join", type=int, default=100000, help="keys no líder do JOIN")
    analisador.add_argument("--fases", default="latencia,vazao,ocioso,disco,join",
                            help="quais fases rodar, separadas por vírgula")
    analisador.add_argument("--clientes", default=[1, 8, 32], type=inteiros,
                            help="clientes simultâneos nas fases de vazão (padrão 1,8,32)")
    analisador.add_argument("--fixar", action="store_true",
                            help="Linux: eco e servidor medido numa CPU, os outros servidores "
                                 "nas demais (menos oscilação; ver Bench.fixar)")
    analisador.add_argument("--perfil", metavar="PASTA", help="perfil py-spy das fases de vazão")
    analisador.add_argument("--manter", action="store_true", help="não apaga as saídas")
    analisador.add_argument("--escala", default=[10, 100, 1000, 5000], type=inteiros,
                            help="fase escala: conexões simultâneas de cada ponto da curva "
                                 "(padrão 10,100,1000,5000)")
    analisador.add_argument("--janela", type=float, metavar="SEGUNDOS",
                            help="fase escala: a janela medida de cada ponto (padrão 5 s)")
    analisador.add_argument("--ociosas", type=int, default=1000,
                            help="fase escala: conexões ociosas em cada servidor na medida da "
                                 "memória (padrão 1000)")

    analisador.add_argument("--eco", type=int, metavar="PORTA", help=argparse.SUPPRESS)
    analisador.add_argument("--gerador", metavar="SPEC", help=argparse.SUPPRESS)
    opcoes = analisador.parse_args(argv)
    if opcoes.eco:
        try:
            servidor_eco(opcoes.eco)
        except KeyboardInterrupt:
            pass
        return 0
    if opcoes.gerador:
        rodar_gerador(json.loads(opcoes.gerador))
        return 0

    if opcoes.fixar and not hasattr(os, "sched_setaffinity"):
        analisador.error("--fixar só funciona no Linux")
    fases = opcoes.fases.split(",")
    desconhecidas = set(fases) - {"latencia", "vazao", "ocioso", "disco", "join", "escala"}
    if desconhecidas:
        analisador.error("fase desconhecida: %s" % ", ".join(sorted(desconhecidas)))
    if opcoes.contra and not set(fases) <= {"latencia", "vazao", "ocioso"}:
        analisador.error("--contra só mede as fases latencia, vazao e ocioso (use --fases)")
    pasta = tempfile.mkdtemp(prefix="kv-bench-")
    inicio = time.monotonic()
    try:
        with contextlib.ExitStack() as pilha:
            bench = Bench(opcoes, pasta, pilha)
            print("KV Store contra %s; código em %s; %s; %d CPUs; saídas em %s"
                  % (bench.contra or "o eco", bench.codigo, platform.python_version(),
                     os.cpu_count(), pasta),
                  file=sys.stderr, flush=True)
            subido = bool(set(fases) - {"escala"})  # a fase escala sobe o seu cluster
            if subido:
                bench.subir()
            if "latencia" in fases:
                bench.latencias()
            if "vazao" in fases:
                if opcoes.perfil:
                    medir_com_perfil(bench, opcoes.perfil, bench.vazoes)
                else:
                    bench.vazoes()
            if "ocioso" in fases:
                bench.ocioso()
            if "disco" in fases:
                bench.disco()
            if "join" in fases:
                # Sem o cluster principal rodando ao lado: só o líder do JOIN e o eco (o JOIN
                # não é fixado em CPUs).
                bench.lider.terminar()
                for s in bench.seguidores:
                    s.terminar()
                bench.join()
            if "escala" in fases:
                # Sem o cluster principal ao lado: a escala sobe um cluster só dela.
                if subido:
                    for proc in [bench.lider] + bench.seguidores:
                        proc.terminar()
                bench.escala()
    finally:
        if not opcoes.manter:
            shutil.rmtree(pasta, ignore_errors=True)
    resumo = bench.resumo()
    try:
        codigo = os.path.relpath(bench.codigo)
    except ValueError:
        codigo = bench.codigo  # Windows: outra unidade de disco
    print("\nKV Store (%s) contra %s; %s %s; %d CPUs%s; %d rodadas; %.0f s"
          % (codigo, bench.contra or "o eco", platform.python_implementation(),
             platform.python_version(),
             os.cpu_count(), " (--fixar)" if opcoes.fixar else "", bench.p["rodadas"],
             time.monotonic() - inicio))
    if bench.tamanho_snapshot:
        print("JOIN: líder com %d keys, snapshot de %.1f MB"
              % (opcoes.keys_join, bench.tamanho_snapshot / 1e6))
    if resumo:
        print(tabela(resumo, bench.nome_referencia))
    if bench.escala_resultado:
        print(tabela_escala(bench.escala_resultado))
    if opcoes.json:
        with open(opcoes.json, "w", encoding="utf-8") as f:
            json.dump({"python": platform.python_version(), "cpus": os.cpu_count(),
                       "parametros": bench.p, "codigo": bench.codigo, "contra": bench.contra,
                       "fixar": opcoes.fixar,
                       "keys_join": opcoes.keys_join, "bytes_snapshot": bench.tamanho_snapshot,
                       "medidas": resumo, "escala": bench.escala_resultado},
                      f, ensure_ascii=False, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(principal(sys.argv[1:]))
