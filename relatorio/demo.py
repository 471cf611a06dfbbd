"""Abre os cinco consoles da demonstração (líder, dois seguidores, clientes A e B) para o vídeo.

    python relatorio/demo.py              # tmux no Linux/macOS; cinco janelas cmd no Windows
    python relatorio/demo.py --atraso 0   # sem o seguidor lento
    python relatorio/demo.py --substituir # fecha a sessão tmux "kvstore" anterior e abre outra

O seguidor 10099 já sobe com --atraso-replicacao 20 (SPEC seção 6): o cenário de
TRY_OTHER_SERVER_OR_LATER está pronto; o roteiro do vídeo aparece ao abrir (e no README).
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
ATRASO = 20

ROTEIRO = """Roteiro do vídeo (até 5 minutos):
  1. Mostre os cinco consoles: líder 10097, seguidores 10098 e 10099 (o 10099 com
     --atraso-replicacao %(atraso)s), clientes A e B.
  2. Cliente A: INIT (Enter nas seis perguntas), PUT key nome value Ana.
     O PUT_OK demora ~%(atraso)s s: o líder espera o REPLICATION_OK do seguidor lento.
  3. Cliente B: INIT, GET key nome -> Ana (o GET normal).
  4. Cliente A: PUT key nome value Bia (de novo espera o seguidor lento). Enquanto espera,
     cliente B: GET key nome várias vezes. O líder e o 10098 devolvem Bia (ts 2); quando o
     sorteio cair no 10099, que ainda tem ts 1: TRY_OTHER_SERVER_OR_LATER.
  5. Depois do PUT_OK de A, um GET de B em qualquer servidor devolve Bia.
  Ctrl+C encerra cada console."""


def consoles(atraso=ATRASO, ip=IP):
    """Os cinco consoles: [(título, argumentos depois do python)], na ordem de abertura."""
    lider = [ip, str(PORTAS[0])]
    lento = ["--atraso-replicacao", "%g" % atraso] if atraso else []
    return [
        ("Servidor 1 - líder %d" % PORTAS[0], ["Servidor.py", ip, str(PORTAS[0])] + lider),
        ("Servidor 2 - seguidor %d" % PORTAS[1], ["Servidor.py", ip, str(PORTAS[1])] + lider),
        ("Servidor 3 - seguidor %s%d" % ("lento " if atraso else "", PORTAS[2]),
         ["Servidor.py", ip, str(PORTAS[2])] + lider + lento),
        ("Cliente A", ["Cliente.py"]),
        ("Cliente B", ["Cliente.py"]),
    ]


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
    for titulo, argumentos in consoles(atraso):
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
    for painel, (titulo, argumentos) in zip(paineis, consoles(atraso)):
        comando = " ".join([nome] + argumentos)
        tmux("select-pane", "-t", painel, "-T", titulo)
        tmux("send-keys", "-t", painel, "-l", comando)
        tmux("send-keys", "-t", painel, "Enter")
    tmux("select-pane", "-t", paineis[3])
    return paineis


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
    print(ROTEIRO % {"atraso": "%g" % opcoes.atraso})

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
        return 0
    if not shutil.which("tmux"):
        print("\nSem tmux: abra cinco terminais na pasta %s e rode, um em cada:" % RAIZ)
        for titulo, argumentos in consoles(opcoes.atraso):
            print("  %-32s python %s" % (titulo + ":", " ".join(argumentos)))
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
