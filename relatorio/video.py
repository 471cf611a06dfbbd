"""Grava o vídeo da entrega (enunciado, seção 9, itens II e III) de uma execução real.

    python relatorio/video.py --nome "Nome Completo" --ra 123456
    python relatorio/video.py --figuras          # também refaz as duas figuras do relatório
    python relatorio/video.py --rapido --portas-livres --saida /tmp/x   # curto (testes)

Sobe os três servidores e os dois clientes como processos de verdade, digita nos stdin deles
caractere por caractere, como uma pessoa, lê o que eles escrevem e desenha os cinco consoles
lado a lado (Pillow); o ffmpeg que vem no imageio-ffmpeg codifica em H.264. Grava em
relatorio/_build/: video.mp4, video.txt (a transcrição: toda linha de todo console, com o
horário), dois quadros, get_normal.png e try_other.png, e o texto desses dois instantes,
get_normal.json e try_other.json: as últimas linhas reais dos consoles que importam, que o
relatório compõe em texto (legível no PDF, sem imagem). --figuras copia os dois .json para
relatorio/figuras/, as figuras 1 e 2 do relatório.

Nada na tela é inventado: o texto dos consoles foi digitado nos programas ou escrito por eles
nesta execução. Só as esperas longas (o seguidor lento) são encurtadas, sempre com a marca
"+N s" na tela e o relógio da execução ao lado.
"""

import argparse
import codecs
import datetime
import json
import os
import platform
import re
import socket
import subprocess
import sys
import threading
import time

PASTA = os.path.dirname(os.path.abspath(__file__))
RAIZ = os.path.dirname(PASTA)
FONTE = os.path.join(PASTA, "fontes", "DejaVuSansMono.ttf")
FONTE_NEGRITO = os.path.join(PASTA, "fontes", "DejaVuSansMono-Bold.ttf")
IP = "127.0.0.1"
PORTAS = (10097, 10098, 10099)       # as do enunciado, seção 5a
MENU = "INIT, PUT ou GET? "
PRAZO = 15.0                         # toda espera tem prazo: prompt, linha, porta
TRY = "TRY_OTHER_SERVER_OR_LATER"
PROMPT = "$ "                        # onde a linha de comando é digitada
LIMITE_VIDEO = 300                   # s: "no máximo 5 minutos" (enunciado, seção 9 II)

# O tipo de cada pedaço de texto de um console.
SAIDA, ERRO, DIGITADO = "saida", "erro", "digitado"


class Ritmo:
    """O andamento da gravação: o normal (o vídeo da entrega) ou o rápido (os testes)."""

    def __init__(self, rapido):
        self.tecla = 0.008 if rapido else 0.1          # s entre duas teclas
        self.pausa = 0.05 if rapido else 0.6           # s antes de responder uma pergunta
        self.leitura = 0.1 if rapido else 2.5          # s para ler a legenda de um passo
        self.atraso = 2 if rapido else 30              # --atraso-replicacao do seguidor lento
        self.fps = 5 if rapido else 10
        self.tamanho = (1280, 720) if rapido else (1920, 1080)
        self.ocioso = 1.0 if rapido else 6.0           # espera maior que isto é encurtada
        self.cartao = 1.5 if rapido else 6.0           # s de cada cartão (abertura e fim)


class Falha(Exception):
    """A execução não saiu como o roteiro espera (um prompt que não veio, um processo morto)."""


# ------------------------------------------------------------------ a execução

class Gravacao:
    """O registro da execução: cada pedaço de texto de cada console e cada legenda, com o tempo."""

    def __init__(self):
        self.inicio = time.monotonic()
        self.data = datetime.datetime.now().astimezone()
        self.eventos = []             # (t, índice do console ou None, tipo, conteúdo)
        self.momentos = {}            # nome -> (t, {console: linhas a mostrar na figura})
        self.condicao = threading.Condition()
        self.passo = None
        self.fim = None

    def agora(self):
        return time.monotonic() - self.inicio

    def registrar(self, indice, tipo, conteudo):
        with self.condicao:
            self.eventos.append((self.agora(), indice, tipo, conteudo))
            self.condicao.notify_all()

    def esperar(self, condicao, prazo, motivo):
        """Espera condicao() ser verdadeira (acordando a cada texto novo); Falha no prazo."""
        limite = time.monotonic() + prazo
        with self.condicao:
            while True:
                valor = condicao()
                if valor:
                    return valor
                restante = limite - time.monotonic()
                if restante <= 0:
                    raise Falha("esperou %.0f s por %s" % (prazo, motivo))
                self.condicao.wait(min(restante, 0.25))

    def legenda(self, numero, titulo, itens, texto, destaques=()):
        """A legenda do passo: o que ele mostra, o item do enunciado e as linhas a destacar."""
        desde = self.agora()
        if self.passo and self.passo["numero"] == numero:
            desde = self.passo["desde"]      # mesma etapa: destaca desde o começo dela
        self.passo = {"numero": numero, "titulo": titulo, "itens": itens, "texto": texto,
                      "destaques": list(destaques), "desde": desde}
        self.registrar(None, "legenda", self.passo)

    def marcar(self, nome, mostrar):
        """Um instante para as figuras do relatório; mostrar: {console: últimas N linhas}."""
        self.momentos[nome] = (self.agora(), mostrar)


class Console:
    """Um dos cinco consoles: o processo que roda nele, o que ele escreve e o que se digita."""

    def __init__(self, gravacao, indice, titulo, ritmo):
        self.gravacao = gravacao
        self.indice = indice
        self.titulo = titulo
        self.ritmo = ritmo
        self.saida = ""          # todo o stdout até agora (para achar prompts e linhas)
        self.lido = 0            # até onde do stdout o roteiro já consumiu
        self.processo = None
        self.leitores = []

    def escrever(self, tipo, texto):
        with self.gravacao.condicao:
            if tipo == SAIDA:
                self.saida += texto
            self.gravacao.registrar(self.indice, tipo, texto)

    def teclar(self, texto):
        """Digita caractere por caractere: no stdin do processo e no eco da tela."""
        for caractere in texto:
            time.sleep(self.ritmo.tecla)
            # O eco antes do envio: a resposta do programa nunca aparece antes da tecla.
            self.escrever(DIGITADO, caractere)
            if self.processo is not None:
                try:
                    self.processo.stdin.write(caractere.encode("utf-8"))
                except OSError:
                    raise Falha("%s: o processo fechou a entrada\n%s" % (self.titulo, self.tela()))

    def executar(self, argumentos, esperar_fim=False):
        """Digita "python ..." no prompt e roda esse comando de verdade, com E/S em UTF-8."""
        self.processo = None
        self.escrever(DIGITADO, PROMPT)
        time.sleep(self.ritmo.pausa)
        self.teclar(" ".join(["python"] + argumentos) + "\n")
        ambiente = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONUTF8="1",
                        PYTHONIOENCODING="utf-8")
        self.saida, self.lido = "", 0
        self.processo = subprocess.Popen(
            [sys.executable] + argumentos, cwd=RAIZ, env=ambiente, bufsize=0,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.leitores = [threading.Thread(target=self.ler, args=(fluxo, tipo), daemon=True)
                         for fluxo, tipo in ((self.processo.stdout, SAIDA),
                                             (self.processo.stderr, ERRO))]
        for leitor in self.leitores:
            leitor.start()
        if esperar_fim:
            self.processo.wait(PRAZO)
            for leitor in self.leitores:
                leitor.join(PRAZO)
            for fluxo in (self.processo.stdin, self.processo.stdout, self.processo.stderr):
                fluxo.close()
            codigo = self.processo.returncode
            self.processo = None
            if codigo != 0:
                raise Falha("%s: python %s terminou com código %d\n%s"
                            % (self.titulo, " ".join(argumentos), codigo, self.tela()))

    def ler(self, fluxo, tipo):
        """Thread leitora de um pipe: o texto aparece assim que chega (prompts não têm \\n)."""
        decodificador = codecs.getincrementaldecoder("utf-8")("replace")
        while True:
            bloco = fluxo.read(4096)
            if not bloco:
                break
            texto = decodificador.decode(bloco).replace("\r", "")
            if texto:
                self.escrever(tipo, texto)
        with self.gravacao.condicao:
            self.gravacao.condicao.notify_all()

    def tela(self):
        """O texto do console até agora (para mensagens de erro)."""
        with self.gravacao.condicao:
            return "".join(c for _, i, tipo, c in self.gravacao.eventos
                           if i == self.indice and tipo != "legenda")

    def exigir_vivo(self):
        if self.processo is None or self.processo.poll() is not None:
            raise Falha("%s: o processo terminou\n%s" % (self.titulo, self.tela()))

    def responder(self, pergunta, resposta):
        """Espera a pergunta aparecer no fim da saída e digita a resposta e Enter."""
        def chegou():
            if self.saida.endswith(pergunta) and len(self.saida) > self.lido:
                return True
            self.exigir_vivo()
            return False
        self.gravacao.esperar(chegou, PRAZO, "%s perguntar %r" % (self.titulo, pergunta))
        self.lido = len(self.saida)
        time.sleep(self.ritmo.pausa)
        self.teclar(resposta + "\n")

    def achar(self, padrao):
        """A primeira linha completa ainda não lida que casa com o padrão (sem consumir)."""
        novo = self.saida[self.lido:]
        completo = novo[:novo.rfind("\n") + 1]
        return re.search("^(?:%s)$" % padrao, completo, re.M)

    def esperar_linha(self, padrao, prazo=PRAZO):
        """Espera uma linha que case com o padrão; o roteiro segue a partir dela."""
        def achou():
            encontrado = self.achar(padrao)
            if not encontrado:
                self.exigir_vivo()
            return encontrado
        encontrado = self.gravacao.esperar(achou, prazo, "%s escrever %r" % (self.titulo, padrao))
        self.lido += encontrado.end()
        return encontrado

    def encerrar(self):
        """O cliente sai limpo no fim da entrada; o servidor, com terminate. Sempre com prazo."""
        processo, self.processo = self.processo, None
        if processo is None:
            return
        try:
            processo.stdin.close()
            processo.wait(1.0 if self.titulo.startswith("cliente") else 0.01)
        except (OSError, subprocess.TimeoutExpired):
            processo.terminate()
        try:
            processo.wait(PRAZO)
        except subprocess.TimeoutExpired:
            processo.kill()
            processo.wait(PRAZO)
        for fluxo in (processo.stdout, processo.stderr):
            fluxo.close()


def porta_livre():
    """Uma porta TCP livre agora em 127.0.0.1 (o sistema escolhe)."""
    with socket.socket() as s:
        s.bind((IP, 0))
        return s.getsockname()[1]


def portas_ocupadas(portas):
    ocupadas = []
    for porta in portas:
        with socket.socket() as s:
            if os.name != "nt":    # como o Servidor: ignora conexões antigas em TIME_WAIT
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((IP, porta))
            except OSError:
                ocupadas.append(porta)
    return ocupadas


def esperar_porta(console, porta):
    """O servidor está pronto quando aceita conexão (abrir e fechar não imprime nada)."""
    limite = time.monotonic() + PRAZO
    while True:
        console.exigir_vivo()
        try:
            socket.create_connection((IP, porta), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > limite:
                raise Falha("%s não abriu a porta %d\n%s"
                            % (console.titulo, porta, console.tela()))
            time.sleep(0.05)


# ------------------------------------------------------------------ o roteiro

class Roteiro:
    """A demonstração, passo a passo, como uma pessoa faria nos cinco consoles."""

    PASSOS = 8

    def __init__(self, gravacao, ritmo, portas):
        self.g = gravacao
        self.ritmo = ritmo
        self.portas = portas
        titulos = ["líder %d" % portas[0], "seguidor %d" % portas[1],
                   "seguidor lento %d" % portas[2], "cliente A", "cliente B"]
        self.consoles = [Console(gravacao, i, t, ritmo) for i, t in enumerate(titulos)]
        self.lider, self.seguidor, self.lento, self.a, self.b = self.consoles
        self.resumo = {}

    def legenda(self, *argumentos, **nomeados):
        self.g.legenda(*argumentos, **nomeados)
        time.sleep(self.ritmo.leitura)

    def resposta_porta(self, porta, padrao):
        return "" if porta == padrao else str(porta)   # Enter aceita a porta padrão

    def subir_servidor(self, console, porta, atraso=0):
        argumentos = ["Servidor.py"]
        if atraso:
            argumentos += ["--atraso-replicacao", "%g" % atraso]
        console.executar(argumentos)
        console.responder("IP [127.0.0.1]: ", "")
        console.responder("Porta [10097]: ", self.resposta_porta(porta, PORTAS[0]))
        console.responder("IP do líder [127.0.0.1]: ", "")
        console.responder("Porta do líder [10097]: ",
                          self.resposta_porta(self.portas[0], PORTAS[0]))
        esperar_porta(console, porta)

    def init(self, console):
        console.executar(["Cliente.py"])
        console.responder(MENU, "INIT")
        for numero, (porta, padrao) in enumerate(zip(self.portas, PORTAS), start=1):
            console.responder("IP do servidor %d [127.0.0.1]: " % numero, "")
            console.responder("Porta do servidor %d [%d]: " % (numero, padrao),
                              self.resposta_porta(porta, padrao))

    def put(self, console, key, value, esperar=True):
        console.responder(MENU, "PUT")
        console.responder("Key: ", key)
        console.responder("Value: ", value)
        if esperar:
            return self.esperar_put_ok(console, key, value)

    def padrao_put_ok(self, key, value):
        return (r"PUT_OK key: %s value %s timestamp (\d+) realizada no servidor [^ ]+:(\d+)"
                % (re.escape(key), re.escape(value)))

    def esperar_put_ok(self, console, key, value):
        # O PUT_OK espera o REPLICATION_OK do seguidor lento: o prazo soma o atraso dele.
        linha = console.esperar_linha(self.padrao_put_ok(key, value), self.ritmo.atraso + PRAZO)
        return int(linha.group(2))

    def get(self, console, key):
        console.responder(MENU, "GET")
        console.responder("Key: ", key)
        linha = console.esperar_linha(
            r"GET key: %s value: (.*) obtido do servidor [^ ]+:(\d+), meu timestamp (\d+) "
            r"e do servidor (\d+)" % re.escape(key))
        return linha.group(1), int(linha.group(2))

    def esperar_linha_servidor(self, porta, padrao):
        console = self.consoles[self.portas.index(porta)]
        self.g.esperar(lambda: console.achar(padrao), PRAZO,
                       "%s escrever %r" % (console.titulo, padrao))

    def encenar(self):
        atraso = self.ritmo.atraso
        self.legenda(1, "Compilação", "enunciado 9 II",
                     "py_compile compila os três arquivos; nenhuma saída = nenhum erro.",
                     [r"\$ python -m py_compile.*"])
        self.lider.executar(["-m", "py_compile", "Servidor.py", "Cliente.py", "Mensagem.py"],
                            esperar_fim=True)

        self.legenda(2, "Os três servidores", "enunciado 5a, 7",
                     "Cada um pergunta IP, porta, IP e porta do líder; Enter aceita o padrão. "
                     "O %d é lento: espera %g s antes de aplicar cada REPLICATION."
                     % (self.portas[2], atraso),
                     [r"(IP|Porta)( do líder)? \[.*"])
        self.subir_servidor(self.lider, self.portas[0])
        self.subir_servidor(self.seguidor, self.portas[1])
        self.subir_servidor(self.lento, self.portas[2], atraso)

        self.legenda(3, "Os dois clientes: INIT", "enunciado 4a",
                     "O cliente lê do teclado IP e porta dos três servidores; "
                     "não sabe quem é o líder.", [r"(IP|Porta) do servidor \d.*"])
        self.init(self.a)
        self.init(self.b)

        # PUTs até um cair direto no líder e outro num seguidor (o sorteio é do cliente):
        # no máximo 4, ou até 8 enquanto nenhum cair num seguidor (chance (1/3)^8).
        pares = [("nome", "Ana"), ("curso", "SD"), ("cidade", "Campinas"), ("ano", "2023"),
                 ("sala", "B12"), ("turno", "noite"), ("prova", "junho"), ("nota", "10")]
        vistos = set()
        for vez, (key, value) in enumerate(pares):
            cliente = (self.a, self.b)[vez % 2]
            self.legenda(4, "PUT pelo líder e por um seguidor", "enunciado 4b, 5c, 5d, 5e",
                         "%s: PUT %s=%s num servidor sorteado. Seguidor encaminha ao líder; o "
                         "PUT_OK só sai depois do REPLICATION_OK dos dois seguidores (o lento "
                         "leva %g s)." % (cliente.titulo, key, value, atraso),
                         [r"PUT_OK key:.*", r"Encaminhando PUT.*", r"Cliente \S+ PUT key.*",
                          r"REPLICATION key.*", r"Enviando PUT_OK.*"])
            porta = self.put(cliente, key, value)
            vistos.add("líder" if porta == self.portas[0] else "seguidor")
            time.sleep(self.ritmo.leitura)
            if len(vistos) == 2 or (vez >= 3 and "seguidor" in vistos):
                break
        self.resumo["puts"] = vez + 1
        self.resumo["caminhos"] = sorted(vistos)

        self.legenda(5, "GET normal", "enunciado 9 III, 4c, 5f",
                     "Cliente B: GET nome num servidor sorteado. O servidor tem ts maior ou igual "
                     "ao do cliente e devolve o valor.",
                     [r"GET key: nome value: Ana.*", r"Cliente \S+ GET key:nome.*devolvendo Ana"])
        valor, porta = self.get(self.b, "nome")
        if valor != "Ana":
            raise Falha("o GET normal devolveu %s" % valor)
        self.esperar_linha_servidor(porta, r"Cliente \S+ GET key:nome .*devolvendo Ana")
        # A figura: o líder (os PUTs e os PUT_OK), o servidor que respondeu e o cliente B.
        respondeu = self.portas.index(porta)
        mostrar = {0: 6, 4: 4}
        if respondeu != 0:
            mostrar[respondeu] = 3
        self.g.marcar("get_normal", mostrar)
        time.sleep(self.ritmo.leitura)

        self.legenda(6, "GET de uma key que não existe", "enunciado 5f",
                     "Cliente B: GET idade. Ninguém gravou essa key: o valor é NULL.",
                     [r"GET key: idade.*NULL.*", r"Cliente \S+ GET key:idade.*NULL"])
        self.get(self.b, "idade")
        time.sleep(self.ritmo.leitura)

        rodada, valor_try = self.try_other()

        self.legenda(8, "Depois do PUT_OK", "enunciado 5e, 5f",
                     "O seguidor lento aplicou a REPLICATION e o PUT_OK chegou; agora "
                     "qualquer servidor devolve %s a B." % valor_try,
                     [r"PUT_OK key: nome.*", r"GET key: nome value: %s .*" % valor_try,
                      r"REPLICATION key:nome value:%s.*" % valor_try])
        self.esperar_put_ok(self.a, "nome", valor_try)
        time.sleep(self.ritmo.leitura)
        valor, _ = self.get(self.b, "nome")
        if valor != valor_try:
            raise Falha("depois do PUT_OK, B leu %s" % valor)
        time.sleep(2 * self.ritmo.leitura + 0.5)
        self.g.fim = self.g.agora()

    def try_other(self):
        """A receita do README: A faz PUT, B repete GET até cair no seguidor lento (rodadas)."""
        valores = ["Bia", "Caio", "Duda", "Edu", "Fabi", "Gil"]
        atraso = self.ritmo.atraso
        for rodada, valor in enumerate(valores, start=1):
            self.legenda(7, "TRY_OTHER_SERVER_OR_LATER, rodada %d" % rodada,
                         "enunciado 9 III, 5f",
                         "A: PUT nome=%s (o seguidor lento segura o PUT_OK por %g s). "
                         "Enquanto isso, B: GET nome até o sorteio cair no seguidor lento."
                         % (valor, atraso),
                         [r".*TRY_OTHER_SERVER_OR_LATER.*"])
            self.put(self.a, "nome", valor, esperar=False)
            gets = 0
            while not self.a.achar(self.padrao_put_ok("nome", valor)):
                resposta, porta = self.get(self.b, "nome")
                gets += 1
                if resposta == TRY:
                    self.esperar_linha_servidor(porta, r"Cliente \S+ GET key:nome .*%s" % TRY)
                    # A figura: o seguidor lento, A esperando o PUT e os GETs de B.
                    self.g.marcar("try_other", {2: 4, 3: 4, 4: 8})
                    self.resumo.update(rodadas=rodada, gets=gets)
                    self.legenda(7, "TRY_OTHER_SERVER_OR_LATER", "enunciado 9 III, 5f",
                                 "B já viu nome=%s (ts maior); o seguidor lento ainda tem o ts "
                                 "antigo e responde TRY_OTHER_SERVER_OR_LATER em vez de um valor "
                                 "velho." % valor, [r".*TRY_OTHER_SERVER_OR_LATER.*"])
                    time.sleep(self.ritmo.leitura)
                    return rodada, valor
                if gets >= 80:
                    raise Falha("80 GETs numa rodada sem o PUT_OK de A")
            self.esperar_put_ok(self.a, "nome", valor)   # a rodada acabou sem TRY: outra
        raise Falha("%d rodadas sem TRY_OTHER_SERVER_OR_LATER" % len(valores))

    def encerrar(self):
        for console in reversed(self.consoles):
            console.encerrar()


# ------------------------------------------------------------------ a tela

class Tela:
    """O estado dos cinco consoles num instante: as linhas, cada uma com seus pedaços e tipos."""

    def __init__(self, quantos):
        # Cada linha: [t, [[tipo, texto], ...], completa]; t é o instante em que ela terminou
        # (o Enter ou o \n), ou em que começou, enquanto não termina.
        self.linhas = [[] for _ in range(quantos)]
        self.passo = None

    def aplicar(self, evento):
        t, indice, tipo, conteudo = evento
        if indice is None:
            self.passo = conteudo
            return
        linhas = self.linhas[indice]
        for pedaco in re.split(r"(\n)", conteudo):
            if not pedaco:
                continue
            if not linhas or linhas[-1][2]:
                linhas.append([t, [], False])
            if pedaco == "\n":
                linhas[-1][0] = t
                linhas[-1][2] = True
            elif linhas[-1][1] and linhas[-1][1][-1][0] == tipo:
                linhas[-1][1][-1][1] += pedaco
            else:
                linhas[-1][1].append([tipo, pedaco])


def texto_da_linha(linha):
    return "".join(texto for _, texto in linha[1])


def destacada(linha, passo):
    """A linha prova o passo em curso (vai em amarelo)?"""
    return passo is not None and linha[0] >= passo["desde"] and any(
        re.fullmatch(p, texto_da_linha(linha)) for p in passo["destaques"])


def tela_em(gravacao, titulos, t):
    """Os consoles como estavam no instante t da execução."""
    tela = Tela(len(titulos))
    for evento in gravacao.eventos:
        if evento[0] <= t:
            tela.aplicar(evento)
    return tela


def figura(tela, titulos, mostrar, relogio_):
    """O texto de uma figura do relatório: as últimas linhas dos consoles escolhidos, como
    estavam na tela, com o tipo de cada pedaço (digitado ou escrito) e o destaque."""
    consoles = []
    for indice in sorted(mostrar):
        linhas = [linha for linha in tela.linhas[indice] if texto_da_linha(linha) or linha[2]]
        consoles.append({"titulo": titulos[indice], "linhas": [
            {"pedacos": [[tipo, texto] for tipo, texto in linha[1]],
             "destaque": destacada(linha, tela.passo)}
            for linha in linhas[-mostrar[indice]:]]})
    # O sistema em que a execução rodou: o relatório diz de onde as figuras vêm (as portas dos
    # clientes são as que esse sistema escolhe).
    sistema = {"Darwin": "macOS"}.get(platform.system(), platform.system())
    return {"relogio": relogio_, "sistema": sistema, "consoles": consoles}


def quebrar(pedacos, colunas):
    """Quebra uma linha em linhas de tela de até `colunas` caracteres, como um terminal."""
    linhas, atual, usadas = [], [], 0
    for tipo, texto in pedacos:
        while texto:
            cabe = texto[:colunas - usadas]
            atual.append((tipo, cabe))
            usadas += len(cabe)
            texto = texto[len(cabe):]
            if usadas == colunas and texto:
                linhas.append(atual)
                atual, usadas = [], 0
    linhas.append(atual)
    return linhas


CORES = {"fundo": "#11161c", "barra": "#1d2835", "painel": "#0a0c0e", "titulo": "#2c3e52",
         "texto_titulo": "#eef3f8", SAIDA: "#dcdcdc", ERRO: "#ff8a80", DIGITADO: "#7fd4ff",
         "destaque": "#ffd84d", "texto_destaque": "#111111", "legenda": "#ffffff",
         "itens": "#ffd84d", "explicacao": "#c5d1dc", "marca": "#ff9f1c", "cursor": "#9aa5b1"}


class Desenho:
    """Desenha um quadro: a legenda em cima, os servidores à esquerda e os clientes à direita."""

    def __init__(self, tamanho, titulos):
        from PIL import ImageFont
        self.largura, self.altura = tamanho
        e = self.altura / 1080.0
        self.e = e
        self.fonte = ImageFont.truetype(FONTE, round(18 * e))
        self.fonte_titulo = ImageFont.truetype(FONTE_NEGRITO, round(18 * e))
        self.fonte_legenda = ImageFont.truetype(FONTE_NEGRITO, round(30 * e))
        self.fonte_explicacao = ImageFont.truetype(FONTE, round(20 * e))
        self.fonte_cartao = ImageFont.truetype(FONTE, round(28 * e))
        self.fonte_cartao_titulo = ImageFont.truetype(FONTE_NEGRITO, round(44 * e))
        self.coluna = self.fonte.getlength("M")
        self.linha = round(18 * e * 1.3)
        self.titulos = titulos
        margem, topo, meio = round(10 * e), round(138 * e), self.largura // 2
        altura_util = self.altura - topo

        def empilhados(x0, x1, quantos):
            passo = altura_util / quantos
            return [(x0, round(topo + i * passo), x1, round(topo + (i + 1) * passo) - margem)
                    for i in range(quantos)]
        # Servidores: três painéis empilhados à esquerda; clientes: dois à direita.
        self.paineis = (empilhados(margem, meio - margem // 2, 3)
                        + empilhados(meio + margem // 2, self.largura - margem, 2))

    def quadro(self, tela, relogio, marca=None):
        from PIL import Image, ImageDraw
        imagem = Image.new("RGB", (self.largura, self.altura), CORES["fundo"])
        d = ImageDraw.Draw(imagem)
        self.desenhar_legenda(d, tela.passo, relogio, marca)
        for indice, caixa in enumerate(self.paineis):
            self.desenhar_painel(d, caixa, self.titulos[indice], tela.linhas[indice], tela.passo)
        return imagem

    def desenhar_legenda(self, d, passo, relogio, marca):
        e = self.e
        d.rectangle([0, 0, self.largura, round(128 * e)], fill=CORES["barra"])
        x, y = round(18 * e), round(10 * e)
        texto_relogio = "relógio %s" % relogio
        x_relogio = self.largura - round(18 * e) - self.fonte_legenda.getlength(texto_relogio)
        if passo:
            cabecalho = "%d/%d  %s" % (passo["numero"], Roteiro.PASSOS, passo["titulo"])
            d.text((x, y), cabecalho, font=self.fonte_legenda, fill=CORES["legenda"])
            x_itens = x + self.fonte_legenda.getlength(cabecalho + "  ")
            d.text((x_itens, y + round(6 * e)), "[%s]" % passo["itens"],
                   font=self.fonte_explicacao, fill=CORES["itens"])
            # A explicação em até duas linhas, quebrada entre palavras.
            cabem = int((self.largura - 2 * x) // self.fonte_explicacao.getlength("M"))
            linhas, atual = [], ""
            for palavra in passo["texto"].split():
                if atual and len(atual) + 1 + len(palavra) > cabem:
                    linhas.append(atual)
                    atual = palavra
                else:
                    atual = (atual + " " + palavra).strip()
            linhas.append(atual)
            for i, linha in enumerate(linhas[:2]):
                d.text((x, y + round((48 + 30 * i) * e)), linha, font=self.fonte_explicacao,
                       fill=CORES["explicacao"])
        d.text((x_relogio, y), texto_relogio, font=self.fonte_legenda, fill=CORES["legenda"])
        if marca:
            largura_marca = self.fonte_legenda.getlength(marca)
            x_marca = x_relogio - largura_marca - round(40 * e)
            d.rectangle([x_marca - round(10 * e), y - round(4 * e),
                         x_marca + largura_marca + round(10 * e), y + round(38 * e)],
                        fill=CORES["marca"])
            d.text((x_marca, y), marca, font=self.fonte_legenda, fill="#000000")

    def desenhar_painel(self, d, caixa, titulo, linhas, passo):
        x0, y0, x1, y1 = caixa
        e = self.e
        altura_titulo = round(28 * e)
        d.rectangle([x0, y0, x1, y0 + altura_titulo], fill=CORES["titulo"])
        d.text((x0 + round(10 * e), y0 + round(4 * e)), titulo, font=self.fonte_titulo,
               fill=CORES["texto_titulo"])
        d.rectangle([x0, y0 + altura_titulo, x1, y1], fill=CORES["painel"])
        folga = round(8 * e)
        colunas = max(10, int((x1 - x0 - 2 * folga) // self.coluna))
        cabem = max(1, (y1 - y0 - altura_titulo - 2 * folga) // self.linha)
        # As últimas linhas que cabem, já quebradas como num terminal.
        visiveis = []
        for linha in reversed(linhas):
            destacar = destacada(linha, passo)
            pedacos = quebrar(linha[1], colunas)
            visiveis[:0] = [(p, destacar) for p in pedacos]
            if len(visiveis) >= cabem:
                break
        visiveis = visiveis[-cabem:]
        y = y0 + altura_titulo + folga
        for pedacos, destacar in visiveis:
            if destacar:
                d.rectangle([x0 + 2, y - 1, x1 - 2, y + self.linha - 2], fill=CORES["destaque"])
            x = x0 + folga
            for tipo, texto in pedacos:
                cor = CORES["texto_destaque"] if destacar else CORES[tipo]
                d.text((x, y), texto, font=self.fonte, fill=cor)
                x += len(texto) * self.coluna
            y += self.linha
        if linhas and not linhas[-1][2] and visiveis:
            # O cursor, onde a próxima tecla vai aparecer.
            y -= self.linha
            d.rectangle([x, y + 2, x + self.coluna - 2, y + self.linha - 3], fill=CORES["cursor"])

    def cartao(self, titulo, linhas):
        from PIL import Image, ImageDraw
        imagem = Image.new("RGB", (self.largura, self.altura), CORES["barra"])
        d = ImageDraw.Draw(imagem)
        e = self.e
        x, y = round(90 * e), round(150 * e)
        d.text((x, y), titulo, font=self.fonte_cartao_titulo, fill=CORES["legenda"])
        y += round(100 * e)
        for linha in linhas:
            d.text((x, y), linha, font=self.fonte_cartao, fill=CORES["explicacao"])
            y += round(48 * e)
        return imagem


# ------------------------------------------------------------------ o vídeo

def plano(gravacao, ritmo):
    """Os trechos da execução que vão ao vídeo: esperas longas viram um corte "+N s"."""
    tempos = sorted({0.0, gravacao.fim} | {t for t, *_ in gravacao.eventos if t <= gravacao.fim})
    mostrar, antes = ritmo.ocioso / 2, ritmo.ocioso / 4    # o começo e o fim da espera
    trechos, inicio = [], 0.0
    for a, b in zip(tempos, tempos[1:]):
        if b - a > ritmo.ocioso and b - a - mostrar - antes >= 1.0:   # corta 1 s ou mais
            trechos.append((inicio, a + mostrar))
            inicio = b - antes
    trechos.append((inicio, gravacao.fim))
    return trechos


def relogio(t):
    return "%d:%02d" % (int(t) // 60, int(t) % 60)


def tempo_no_video(t, trechos, ritmo):
    """Onde o instante t da execução aparece no vídeo (depois do cartão de abertura)."""
    decorrido = ritmo.cartao
    for inicio, fim in trechos:
        if t < inicio:
            return decorrido          # caiu num corte: aparece no começo do trecho seguinte
        if t <= fim:
            return decorrido + t - inicio
        decorrido += fim - inicio
    return decorrido


def cartoes(gravacao, opcoes, desenho, resumo):
    data = gravacao.data.strftime("%d/%m/%Y %H:%M (UTC%z)")   # %Z no Windows é um nome longo
    abertura = desenho.cartao("KV Store replicado — Sistemas Distribuídos", [
        "Nome: %s" % (opcoes.nome or "(não informado: --nome)"),
        "RA: %s" % (opcoes.ra or "(não informado: --ra)"),
        "Data: %s" % data,
        "Python %s (%s)" % (platform.python_version(), platform.python_implementation()),
        "Sistema: %s" % platform.platform(terse=True),
        "",
        "Três servidores e dois clientes rodando de verdade, digitados como uma pessoa.",
    ])
    comando = "python relatorio/video.py" + "".join(
        " " + (a if re.fullmatch(r"[\w./=:-]+", a) else '"%s"' % a) for a in sys.argv[1:])
    fim = desenho.cartao("Gravação de uma execução real", [
        "Todo texto dos consoles foi digitado nos programas ou escrito por eles",
        "nesta execução (o \"$ \" marca onde a linha de comando foi digitada).",
        "Esperas longas foram encurtadas com a marca \"+N s\"; o relógio é o da execução.",
        "PUTs: %d (%s). TRY_OTHER_SERVER_OR_LATER na rodada %d, %dº GET."
        % (resumo["puts"], " e ".join(resumo["caminhos"]), resumo["rodadas"], resumo["gets"]),
        "",
        "Feito com o comando:",
        comando[:100],
        "Transcrição de todos os consoles: video.txt, ao lado do vídeo.",
    ])
    return abertura, fim


def codificar(gravacao, ritmo, desenho, caminho, abertura, fim):
    """Renderiza os quadros e manda ao ffmpeg; devolve (trechos, duração em s, quadros)."""
    import imageio_ffmpeg
    trechos = plano(gravacao, ritmo)
    escritor = imageio_ffmpeg.write_frames(
        caminho, (desenho.largura, desenho.altura), fps=ritmo.fps, codec="libx264",
        quality=None, macro_block_size=8, pix_fmt_out="yuv420p", ffmpeg_log_level="error",
        output_params=["-crf", "20", "-preset", "veryfast", "-movflags", "+faststart"])
    escritor.send(None)
    quadros = 0

    def enviar(bytes_do_quadro, vezes=1):
        nonlocal quadros
        for _ in range(vezes):
            escritor.send(bytes_do_quadro)
            quadros += 1

    vezes_cartao = round(ritmo.cartao * ritmo.fps)
    enviar(abertura.tobytes(), vezes_cartao)
    tela = Tela(len(desenho.titulos))
    eventos = iter(e for e in gravacao.eventos if e[0] <= gravacao.fim)
    proximo = next(eventos, None)
    aplicados, ultimo, ultima_chave = 0, None, None
    for numero, (inicio, final) in enumerate(trechos):
        corte = inicio - trechos[numero - 1][1] if numero else 0
        passos = max(1, round((final - inicio) * ritmo.fps))
        for k in range(passos):
            t = inicio + k / ritmo.fps
            while proximo is not None and proximo[0] <= t:
                tela.aplicar(proximo)
                aplicados += 1
                proximo = next(eventos, None)
            marca = "+%d s" % round(corte) if corte and k < 2 * ritmo.fps else None
            chave = (aplicados, relogio(t), marca)
            if chave != ultima_chave:     # nada mudou: repete o quadro já desenhado
                ultimo = desenho.quadro(tela, relogio(t), marca).tobytes()
                ultima_chave = chave
            enviar(ultimo)
    while proximo is not None:
        tela.aplicar(proximo)
        proximo = next(eventos, None)
    enviar(desenho.quadro(tela, relogio(gravacao.fim)).tobytes(), ritmo.fps)
    enviar(fim.tobytes(), vezes_cartao)
    escritor.close()
    return trechos, quadros / ritmo.fps, quadros


def transcrever(gravacao, titulos, trechos, ritmo, caminho, cabecalho):
    """video.txt: toda linha de todo console, com o tempo no vídeo e o relógio da execução."""
    tela = Tela(len(titulos))
    legendas = []
    for evento in gravacao.eventos:
        if evento[0] > gravacao.fim:
            break                     # o encerramento dos processos não vai ao vídeo
        tela.aplicar(evento)
        if evento[1] is None:
            passo = evento[3]
            legendas.append((evento[0], "legenda", "%d/%d %s [%s]: %s" % (
                passo["numero"], Roteiro.PASSOS, passo["titulo"], passo["itens"], passo["texto"])))
    linhas = list(legendas)
    for indice, titulo in enumerate(titulos):
        linhas += [(linha[0], titulo, texto_da_linha(linha)) for linha in tela.linhas[indice]]
    for (_, fim), (inicio, _) in zip(trechos, trechos[1:]):
        linhas.append((inicio, "corte", "+%d s de espera encurtados" % round(inicio - fim)))
    linhas.sort(key=lambda linha: linha[0])
    with open(caminho, "w", encoding="utf-8") as arquivo:
        for texto in cabecalho:
            arquivo.write("# %s\n" % texto)
        arquivo.write("# vídeo | relógio | console | linha\n")
        for t, console, texto in linhas:
            arquivo.write("%s | %s | %s | %s\n" % (
                "%6.1f" % tempo_no_video(t, trechos, ritmo), "%6.2f" % t, console, texto))


def principal(argumentos):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nome", help="seu nome, no cartão de abertura")
    parser.add_argument("--ra", help="seu RA, no cartão de abertura")
    parser.add_argument("--rapido", action="store_true",
                        help="vídeo curto: digitação rápida, atraso 2 s, 5 quadros/s, 1280x720")
    parser.add_argument("--portas-livres", action="store_true",
                        help="servidores em portas livres (testes); o padrão é 10097-10099")
    parser.add_argument("--figuras", action="store_true",
                        help="grava também relatorio/figuras/get_normal.json e try_other.json "
                             "(o texto dos consoles nas figuras do relatório)")
    parser.add_argument("--saida", default=os.path.join(PASTA, "_build"),
                        help="pasta de saída (padrão relatorio/_build)")
    opcoes = parser.parse_args(argumentos)
    try:
        import imageio_ffmpeg  # noqa: F401
        import PIL  # noqa: F401
    except ImportError as erro:
        print("Falta %s: python -m pip install -r relatorio/requisitos.txt" % erro.name,
              file=sys.stderr)
        return 2
    ritmo = Ritmo(opcoes.rapido)
    if opcoes.portas_livres:
        portas = (porta_livre(), porta_livre(), porta_livre())
    else:
        portas = PORTAS
        ocupadas = portas_ocupadas(portas)
        if ocupadas:
            print("Porta(s) %s em uso: feche os servidores abertos ou use --portas-livres."
                  % ", ".join(map(str, ocupadas)), file=sys.stderr)
            return 1
    os.makedirs(opcoes.saida, exist_ok=True)
    video = os.path.join(opcoes.saida, "video.mp4")
    transcricao = os.path.join(opcoes.saida, "video.txt")

    gravacao = Gravacao()
    roteiro = Roteiro(gravacao, ritmo, portas)
    titulos = [c.titulo for c in roteiro.consoles]
    print("Gravando uma execução real (%s)..."
          % ("rápida" if opcoes.rapido else "uns 3 min, mais 1,5 para codificar"))
    try:
        roteiro.encenar()
    except Falha as erro:
        gravacao.fim = gravacao.agora()
        transcrever(gravacao, titulos, [(0.0, gravacao.fim)], ritmo, transcricao,
                    ["FALHOU: %s" % str(erro).splitlines()[0]])
        print("ERRO: %s\n(transcrição parcial em %s)" % (erro, transcricao), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("Interrompido: nenhum vídeo gravado.", file=sys.stderr)
        return 130
    finally:
        roteiro.encerrar()
    print("Execução gravada em %.0f s; desenhando e codificando o vídeo..." % gravacao.fim)

    desenho = Desenho(ritmo.tamanho, titulos)
    abertura, fim = cartoes(gravacao, opcoes, desenho, roteiro.resumo)
    trechos, duracao, quadros = codificar(gravacao, ritmo, desenho, video, abertura, fim)
    transcrever(gravacao, titulos, trechos, ritmo, transcricao, [
        "Transcrição de %s (uma execução real, %s)" % (os.path.basename(video),
                                                         gravacao.data.isoformat(" ", "seconds")),
        "Python %s, %s" % (platform.python_version(), platform.platform(terse=True)),
        "servidores em %s; seguidor lento com --atraso-replicacao %g"
        % (", ".join("%s:%d" % (IP, p) for p in portas), ritmo.atraso),
        "duração do vídeo: %.1f s (%d quadros, %d por segundo, %dx%d)"
        % ((duracao, quadros, ritmo.fps) + ritmo.tamanho),
    ])
    # Os quadros das figuras do relatório: os mesmos desenhos, nos instantes marcados.
    for nome, (t, mostrar) in sorted(gravacao.momentos.items()):
        caminho = os.path.join(opcoes.saida, nome + ".png")
        desenho.quadro(tela_em(gravacao, titulos, t + 0.3), relogio(t)).save(caminho,
                                                                            optimize=True)
        # A figura do relatório é texto, não imagem: a mesma em qualquer Python, e o git vê só
        # o que mudou. A tela do instante marcado, com a legenda do passo que ele prova.
        texto = json.dumps(figura(tela_em(gravacao, titulos, t), titulos, mostrar, relogio(t)),
                           ensure_ascii=False, indent=1) + "\n"
        destinos = [opcoes.saida] + ([os.path.join(PASTA, "figuras")] if opcoes.figuras else [])
        for pasta in destinos:
            with open(os.path.join(pasta, nome + ".json"), "w", encoding="utf-8",
                      newline="\n") as arquivo:
                arquivo.write(texto)
    print("vídeo: %s (%.1f s, %dx%d)\ntranscrição: %s" % ((video, duracao) + ritmo.tamanho
                                                           + (transcricao,)))
    if duracao > LIMITE_VIDEO:
        # Muitas rodadas sem TRY_OTHER (raro): o enunciado pede no máximo 5 minutos.
        print("ERRO: o vídeo passou de %d s; rode de novo." % LIMITE_VIDEO, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(principal(sys.argv[1:]))
