"""Abre os cinco consoles da demonstração (líder, dois seguidores, clientes A e B) para o vídeo.

    python relatorio/demo.py              # tmux no Linux/macOS; cinco janelas cmd no Windows
    python relatorio/demo.py --atraso 0   # sem o seguidor lento
    python relatorio/demo.py --substituir # fecha a sessão tmux "kvstore" anterior e abre outra

Os servidores sobem sem argumentos e perguntam IP, porta, IP do líder e porta do líder, como o
enunciado pede (seção 5a). No tmux, este script digita as respostas nas perguntas, uma de cada
vez, e o vídeo mostra a pergunta e a resposta; no Windows, a janela de cada servidor fica
esperando a pessoa digitar, e o roteiro abaixo diz o quê. O seguidor 10099 sobe com
--atraso-replicacao 30: o cenário de TRY_OTHER_SERVER_OR_LATER (README) está pronto.
"""

import argparse
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
import unicodedata

RAIZ = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IP = "127.0.0.1"
PORTAS = (10097, 10098, 10099)
SESSAO = "kvstore"
ATRASO = 30
PRAZO = 15.0          # espera máxima por uma pergunta do servidor no painel do tmux
PERGUNTAS = ("IP [", "Porta [", "IP do líder [", "Porta do líder [")

# O roteiro cabe em 5 minutos no ritmo de uma pessoa (relatorio/LEIAME.md, "Quanto dura o
# vídeo"): ela lê cada pergunta e digita devagar; o seguidor lento segura cada PUT_OK 30 s.
TECLAS_POR_SEGUNDO = 3.5  # digitação de quem grava (de 3 a 4 teclas por segundo)
LEITURA = 2.0             # s para ler a tela e pensar antes de cada resposta
ABRIR_JANELAS = 17.0      # s para as cinco janelas abrirem e ficarem lado a lado
RODADAS = 3               # rodadas de PUT + GETs até o TRY_OTHER_SERVER_OR_LATER, no máximo
COMPILAR = "py -3.8 -m py_compile Servidor.py Cliente.py Mensagem.py"
ABRIR = "py -3.8 relatorio/demo.py"
PADROES = ("127.0.0.1", "10097", "127.0.0.1", "10097")   # o que Enter aceita no servidor

ROTEIRO = """Roteiro do vídeo (menos de 5 minutos: uns %(uma)s com uma rodada, %(todas)s com %(rodadas)d):
  0. Já gravando, antes de abrir os consoles, a compilação (não imprime nada):
       %(compilar)s
  1. Servidores (seção 5a): cada um pergunta IP, porta, IP do líder e porta do líder; Enter
     aceita o padrão entre colchetes.
%(respostas)s
     O 10099 sobe com --atraso-replicacao %(atraso)s: espera %(atraso)s s antes de aplicar cada
     REPLICATION. Um servidor não imprime nada até a primeira requisição.
  2. Cliente A e cliente B: INIT e Enter nas seis perguntas (127.0.0.1, 10097, 10098, 10099).
  3. Cliente A: PUT, key nome, value Ana. A fica esperando ~%(atraso)s s: o PUT_OK só sai
     depois do REPLICATION_OK do seguidor lento.
  4. Logo em seguida, cliente B: GET, key nome, e de novo, sem parar, até aparecer
     TRY_OTHER_SERVER_OR_LATER (cabem uns %(gets)d GETs nos %(atraso)s s). O líder e o 10098 já
     têm Ana e respondem com ela (o GET normal); o timestamp de B sobe. Quando o sorteio cai
     no 10099, que ainda não aplicou a REPLICATION:
       GET key: nome value: TRY_OTHER_SERVER_OR_LATER obtido do servidor 127.0.0.1:10099, ...
     (se o primeiro GET cair no 10099, ele devolve NULL: B ainda não viu nada mais novo.)
  5. Se o PUT_OK de A chegar antes do TRY_OTHER_SERVER_OR_LATER, outra rodada: A faz PUT nome
     com outro valor (Bia, depois Caio) e B volta aos GETs. Uma rodada mostra o TRY_OTHER em
     %(chance)s das vezes; até a rodada %(rodadas)d, em %(chance_todas)s. Se a rodada %(rodadas)d acabar
     sem ele, pare e grave de novo: com mais uma, o vídeo chegaria a %(mais_uma)s.
  6. Depois do TRY_OTHER, espere o PUT_OK de A (o 10099 imprime REPLICATION, o líder Enviando
     PUT_OK) e pare a gravação.
  Ctrl+C encerra cada console."""


def digitadas(respostas):
    """O que a pessoa digita nas perguntas do servidor: "" (só Enter) onde o padrão serve."""
    return [resposta if resposta != padrao else "" for resposta, padrao in zip(respostas, PADROES)]


def tempo_de(respostas, teclas_por_segundo=TECLAS_POR_SEGUNDO, leitura=LEITURA):
    """Segundos para ler a tela e digitar estas respostas, cada uma com o Enter."""
    return sum(leitura + (len(resposta) + 1) / teclas_por_segundo for resposta in respostas)


def gets_por_rodada(atraso=ATRASO, teclas_por_segundo=TECLAS_POR_SEGUNDO, leitura=LEITURA):
    """Quantos GETs de B (menu e key) cabem enquanto o seguidor lento segura o PUT de A. Na
    repetição a pessoa já sabe as duas perguntas: lê só a resposta de cada GET e digita
    GET e a key de novo."""
    return int(atraso // (leitura + len("GET\nnome\n") / teclas_por_segundo))


def chance_de_try(gets):
    """A chance de um TRY_OTHER_SERVER_OR_LATER numa rodada de tantos GETs, com o servidor
    sorteado entre três: B só não o vê se todo GET no seguidor lento vier antes de todo GET
    num servidor que já tem o valor novo (o que sobe o timestamp de B)."""
    return 1 - sum((1 / 3) ** lentos * (2 / 3) ** (gets - lentos) for lentos in range(gets + 1))


def tempo_do_video(rodadas=RODADAS, atraso=ATRASO, **ritmo):
    """Segundos de gravação do roteiro, do comando que compila ao PUT_OK da última rodada.

    Cada rodada: A digita o PUT e espera o seguidor lento (os GETs de B cabem nessa espera). As
    esperas do programa (abrir uma conexão, responder um GET) são de milissegundos e ficam de
    fora."""
    tempo = tempo_de([COMPILAR, ABRIR], **ritmo) + ABRIR_JANELAS
    for _, _, respostas in consoles(atraso)[:3]:
        tempo += tempo_de(digitadas(respostas), **ritmo)
    tempo += 2 * tempo_de(["INIT"] + [""] * 6, **ritmo)
    tempo += rodadas * (tempo_de(["PUT", "nome", "Ana"], **ritmo) + atraso)
    return tempo + ritmo.get("leitura", LEITURA)   # ler o PUT_OK antes de parar


def minutos(segundos):
    return "%d:%02d" % divmod(int(round(segundos)), 60)


def consoles(atraso=ATRASO, ip=IP):
    """Os cinco consoles, na ordem de abertura: [(título, argumentos depois do python,
    respostas às perguntas)]. Os servidores perguntam IP, porta, IP e porta do líder."""
    lento = ["--atraso-replicacao", "%g" % atraso] if atraso else []
    lider = [ip, str(PORTAS[0])]
    return [
        ("Servidor 1 - líder %d" % PORTAS[0], ["Servidor.py"], [ip, str(PORTAS[0])] + lider),
        ("Servidor 2 - seguidor %d" % PORTAS[1], ["Servidor.py"], [ip, str(PORTAS[1])] + lider),
        ("Servidor 3 - seguidor %s%d" % ("lento " if atraso else "", PORTAS[2]),
         ["Servidor.py"] + lento, [ip, str(PORTAS[2])] + lider),
        ("Cliente A", ["Cliente.py"], []),
        ("Cliente B", ["Cliente.py"], []),
    ]


def roteiro(atraso):
    linhas = []
    for titulo, argumentos, respostas in consoles(atraso)[:3]:
        teclas = [resposta or "Enter" for resposta in digitadas(respostas)]
        linhas.append("     %s: python %s\n       responda: %s" % (titulo, " ".join(argumentos),
                                                                  ", ".join(teclas)))
    gets = gets_por_rodada(atraso) if atraso else 0
    return ROTEIRO % {
        "atraso": "%g" % atraso, "respostas": "\n".join(linhas), "compilar": COMPILAR,
        "uma": minutos(tempo_do_video(1, atraso)),
        "todas": minutos(tempo_do_video(RODADAS, atraso)), "rodadas": RODADAS, "gets": gets,
        "mais_uma": minutos(tempo_do_video(RODADAS + 1, atraso)),
        "chance": "%.0f%%" % (100 * chance_de_try(gets)),
        "chance_todas": "%.0f%%" % (100 * (1 - (1 - chance_de_try(gets)) ** RODADAS))}


def portas_ocupadas(ip=IP):
    """Portas da demonstração que já têm alguém escutando (outra demonstração aberta?)."""
    ocupadas = []
    for porta in PORTAS:
        with socket.socket() as s:
            # Como o Servidor (create_server): no POSIX, SO_REUSEADDR ignora conexões antigas
            # em TIME_WAIT; no Windows essa opção quer dizer outra coisa e fica de fora.
            if os.name != "nt":
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((ip, porta))
            except OSError:
                ocupadas.append(porta)
    return ocupadas


# ------------------------------------------------------------------ Windows

def comando_windows(titulo, argumentos, python=sys.executable):
    """start abre uma janela cmd que fica aberta (/k) depois que o programa termina.

    ""python" args": o cmd /k tira só as aspas de fora, e o caminho do python pode ter espaços.
    O título vai sem acentos: a página de código do console varia de máquina para máquina.
    """
    titulo = unicodedata.normalize("NFKD", titulo).encode("ascii", "ignore").decode("ascii")
    return 'start "%s" cmd /k ""%s" %s"' % (titulo, python, " ".join(argumentos))


def abrir_windows(atraso, python):
    for titulo, argumentos, _ in consoles(atraso):
        subprocess.Popen(comando_windows(titulo, argumentos, python), shell=True, cwd=RAIZ)
        time.sleep(0.3)  # as janelas abrem na ordem: líder primeiro


# --------------------------------------------------------------------- tmux

def tmux(*argumentos):
    saida = subprocess.run(["tmux"] + list(argumentos), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, universal_newlines=True)
    if saida.returncode != 0:
        raise RuntimeError("tmux %s: %s" % (" ".join(argumentos), saida.stderr.strip()))
    return saida.stdout.strip()


def nome_do_python(python):
    """Como o python aparece digitado nos consoles: "python" quando é o mesmo interpretador
    (a pasta dele vem primeiro no PATH do console); senão, o caminho inteiro."""
    pasta = os.path.dirname(python)
    for nome in ("python", "python3"):
        candidato = os.path.join(pasta, nome)
        if os.path.exists(candidato) and os.path.samefile(candidato, python):
            return nome
    return shlex.quote(python)


def concha(python):
    """Um bash limpo (sem .bashrc) com a pasta do python escolhido na frente do PATH."""
    caminho = os.path.dirname(python) + os.pathsep + os.environ.get("PATH", "")
    return "env PATH=%s PS1='$ ' PYTHONDONTWRITEBYTECODE=1 bash --norc --noprofile" \
        % shlex.quote(caminho)


def abrir_tmux(atraso, python, sessao=SESSAO, disposicao="lado", largura=200, altura=50,
               alturas=None):
    """Cria a sessão com os cinco painéis e digita o comando de cada um; devolve os ids.

    disposicao "lado": servidores à esquerda, clientes à direita (para a tela do vídeo);
    "pilha": os cinco um embaixo do outro, com as alturas dadas (para as figuras).
    """
    shell = concha(python)
    primeiro = tmux("new-session", "-d", "-s", sessao, "-x", str(largura), "-y", str(altura),
                    "-c", RAIZ, "-P", "-F", "#{pane_id}", shell)

    def dividir(alvo, direcao, tamanho):
        return tmux("split-window", "-d", direcao, "-t", alvo, "-l", tamanho, "-c", RAIZ,
                    "-P", "-F", "#{pane_id}", shell)

    if disposicao == "lado":
        cliente_a = dividir(primeiro, "-h", "50%")
        servidor3 = dividir(primeiro, "-v", "33%")
        servidor2 = dividir(primeiro, "-v", "50%")
        cliente_b = dividir(cliente_a, "-v", "50%")
        paineis = [primeiro, servidor2, servidor3, cliente_a, cliente_b]
    else:
        paineis = [primeiro]
        for _ in range(4):
            paineis.append(dividir(paineis[-1], "-v", "50%"))
        for painel, linhas in zip(paineis, alturas or []):
            tmux("resize-pane", "-t", painel, "-y", str(linhas))
    tmux("set-option", "-t", sessao, "pane-border-status", "top")
    tmux("set-option", "-t", sessao, "pane-border-format", " #{pane_title} ")
    tmux("set-option", "-t", sessao, "mouse", "on")
    nome = nome_do_python(python)
    for painel, (titulo, argumentos, _) in zip(paineis, consoles(atraso)):
        tmux("select-pane", "-t", painel, "-T", titulo)
        digitar(painel, " ".join([nome] + argumentos))
    # [5a] As respostas às perguntas de cada servidor, uma de cada vez, depois da pergunta.
    for painel, (titulo, _, respostas) in zip(paineis, consoles(atraso)):
        for pergunta, resposta in zip(PERGUNTAS, respostas):
            esperar_pergunta(painel, pergunta, titulo)
            time.sleep(0.3)  # um ritmo de pessoa: dá para ler a pergunta no vídeo
            digitar(painel, resposta)
    tmux("select-pane", "-t", paineis[3])
    return paineis


def digitar(painel, texto):
    tmux("send-keys", "-t", painel, "-l", texto)
    tmux("send-keys", "-t", painel, "Enter")


def esperar_pergunta(painel, pergunta, titulo):
    """Espera a última linha do painel ser a pergunta (texto digitado antes dela embaralharia
    a tela: o terminal mostra o que se digita na hora, antes de o programa perguntar)."""
    limite = time.monotonic() + PRAZO
    while True:
        tela = [linha for linha in tmux("capture-pane", "-p", "-t", painel).split("\n") if linha]
        if tela and tela[-1].startswith(pergunta):
            return
        if time.monotonic() > limite:
            raise RuntimeError("%s não perguntou %r; a tela mostra: %s"
                               % (titulo, pergunta + "...]", tela[-1:] or "nada"))
        time.sleep(0.05)


def sessao_existe(sessao):
    return subprocess.run(["tmux", "has-session", "-t", sessao], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode == 0


def principal(argumentos):
    parser = argparse.ArgumentParser(description="Abre os cinco consoles da demonstração.")
    parser.add_argument("--atraso", type=float, default=ATRASO,
                        help="--atraso-replicacao do seguidor 10099 (padrão %d; 0 = sem)" % ATRASO)
    parser.add_argument("--python", default=sys.executable,
                        help="o interpretador dos consoles (padrão: este)")
    parser.add_argument("--substituir", action="store_true",
                        help="fecha a sessão tmux anterior de mesmo nome antes de abrir")
    parser.add_argument("--sessao", default=SESSAO, help="nome da sessão tmux")
    opcoes = parser.parse_args(argumentos)
    print(roteiro(opcoes.atraso))

    if os.name != "nt" and shutil.which("tmux") and opcoes.substituir \
            and sessao_existe(opcoes.sessao):
        tmux("kill-session", "-t", opcoes.sessao)
        # Os servidores da sessão antiga levam um instante para soltar as portas.
        limite = time.monotonic() + 5
        while portas_ocupadas() and time.monotonic() < limite:
            time.sleep(0.1)
    ocupadas = portas_ocupadas()
    if ocupadas:
        print("%s em uso: feche a demonstração anterior (Ctrl+C nos consoles%s)."
              % ("A porta %d já está" % ocupadas[0] if len(ocupadas) == 1 else
                 "As portas %s já estão" % ", ".join(map(str, ocupadas)),
                 "" if os.name == "nt" else " ou --substituir"), file=sys.stderr)
        return 1

    if os.name == "nt":
        abrir_windows(opcoes.atraso, opcoes.python)
        print("\nAs cinco janelas abriram. Digite nelas as respostas do passo 1, depois siga o "
              "roteiro.")
        return 0
    if not shutil.which("tmux"):
        print("\nSem tmux: abra cinco terminais na pasta %s e rode, um em cada:" % RAIZ)
        for titulo, argumentos, respostas in consoles(opcoes.atraso):
            print("  %-32s python %s%s" % (titulo + ":", " ".join(argumentos),
                                           "  (responda: %s)" % ", ".join(respostas)
                                           if respostas else ""))
        return 1
    if sessao_existe(opcoes.sessao):
        print("A sessão tmux %r já existe: tmux attach -t %s (ou --substituir)"
              % (opcoes.sessao, opcoes.sessao), file=sys.stderr)
        return 1
    abrir_tmux(opcoes.atraso, opcoes.python, opcoes.sessao)
    if os.environ.get("TMUX"):
        tmux("switch-client", "-t", opcoes.sessao)
        return 0
    if not sys.stdout.isatty():
        print("Sessão %r aberta: tmux attach -t %s" % (opcoes.sessao, opcoes.sessao))
        return 0
    os.execvp("tmux", ["tmux", "attach-session", "-t", opcoes.sessao])


if __name__ == "__main__":
    sys.exit(principal(sys.argv[1:]))
