"""As telas do relatório: uma execução de verdade em tmux, digitada como uma pessoa digitaria.

    python relatorio/figuras/capturar.py [--python /caminho/python3.8] [--atraso 20]

Abre os cinco consoles com os mesmos comandos do demo.py (portas 10097-10099, o seguidor
10099 com --atraso-replicacao), digita nos menus dos clientes com send-keys, copia a tela de
cada painel (capture-pane) e desenha o texto em PNG (Pillow, DejaVu Sans Mono):
  get_normal.png  A faz PUT nome=Ana; B faz GET nome e recebe Ana.
  try_other.png   A faz PUT nome=Bia (o seguidor lento segura o PUT_OK); B faz GET nome até
                  o sorteio cair no seguidor lento depois de já ter visto Bia (SPEC seção 6).
Precisa de tmux e Pillow (python -m pip install pillow).
"""

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import time

PASTA = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(PASTA))

import demo  # noqa: E402

SESSAO = "kvstore-figuras"
LARGURA = 114                       # colunas: a linha mais longa do cliente tem ~111
ALTURAS = (8, 7, 7, 12, 17)         # linhas de cada painel: servidores 1-3, clientes A e B
PRAZO = 15.0
MENU = "INIT, PUT ou GET? "
FONTE = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"
FONTE_NEGRITO = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf"


class Tela:
    """Os cinco painéis da sessão tmux: ler o que aparece e digitar."""

    def __init__(self, paineis):
        self.servidores = paineis[:3]
        self.a, self.b = paineis[3], paineis[4]
        self.paineis = paineis

    @staticmethod
    def texto(painel, historico=False):
        argumentos = ["capture-pane", "-p", "-t", painel]
        if historico:
            argumentos += ["-S", "-"]
        return demo.tmux(*argumentos)

    def esperar(self, painel, padrao, prazo=PRAZO, vezes=1):
        """Espera o padrão (regex) aparecer `vezes` vezes no painel (histórico incluído)."""
        limite = time.monotonic() + prazo
        while True:
            achados = re.findall(padrao, Tela.texto(painel, historico=True), re.M)
            if len(achados) >= vezes:
                return achados
            if time.monotonic() > limite:
                raise RuntimeError("esperou %.0f s por %r no painel %s:\n%s"
                                   % (prazo, padrao, painel, Tela.texto(painel, True)))
            time.sleep(0.1)

    def digitar(self, painel, linha, pergunta):
        """Espera a pergunta aparecer no fim do painel e digita a resposta (e Enter)."""
        limite = time.monotonic() + PRAZO
        while not Tela.texto(painel).rstrip("\n").endswith(pergunta.rstrip()):
            if time.monotonic() > limite:
                raise RuntimeError("a pergunta %r não apareceu no painel %s:\n%s"
                                   % (pergunta, painel, Tela.texto(painel)))
            time.sleep(0.05)
        time.sleep(0.25)   # o ritmo de uma pessoa
        if linha:
            demo.tmux("send-keys", "-t", painel, "-l", linha)
        demo.tmux("send-keys", "-t", painel, "Enter")

    def menu(self, painel, *respostas):
        """Uma opção do menu e as respostas às perguntas que ela faz, na ordem."""
        opcao = respostas[0]
        perguntas = {"INIT": ["IP do servidor 1 [127.0.0.1]: ", "Porta do servidor 1 [10097]: ",
                              "IP do servidor 2 [127.0.0.1]: ", "Porta do servidor 2 [10098]: ",
                              "IP do servidor 3 [127.0.0.1]: ", "Porta do servidor 3 [10099]: "],
                     "PUT": ["Key: ", "Value: "], "GET": ["Key: "]}[opcao]
        self.digitar(painel, opcao, MENU)
        for pergunta, resposta in zip(perguntas, list(respostas[1:]) + [""] * 6):
            self.digitar(painel, resposta, pergunta)


def esperar_unidos():
    """Os dois seguidores abriram o canal com o líder (duas conexões com a porta 10097)."""
    limite = time.monotonic() + PRAZO
    while time.monotonic() < limite:
        for porta in demo.PORTAS:
            try:
                socket.create_connection((demo.IP, porta), 1).close()
            except OSError:
                break
        else:
            if shutil.which("ss") is None:
                time.sleep(2)
                return
            saida = subprocess.run(["ss", "-Htn", "state", "established",
                                    "( dport = :%d )" % demo.PORTAS[0]],
                                   stdout=subprocess.PIPE, universal_newlines=True).stdout
            if len(saida.strip().splitlines()) >= 2:
                time.sleep(0.3)   # o JOIN_OK chega logo depois da conexão
                return
        time.sleep(0.1)
    raise RuntimeError("os seguidores não se uniram ao líder em %.0f s" % PRAZO)


# ------------------------------------------------------------------ desenho

def desenhar(paineis_tmux, titulos, destaques, caminho):
    """Os cinco painéis, um embaixo do outro, como o tmux mostra; linhas de destaque em amarelo."""
    from PIL import Image, ImageDraw, ImageFont
    tamanho = 26
    fonte = ImageFont.truetype(FONTE, tamanho)
    negrito = ImageFont.truetype(FONTE_NEGRITO, tamanho - 2)
    coluna = fonte.getlength("M")
    linha = int(tamanho * 1.3)
    margem, barra, espaco = 18, int(tamanho * 1.65), 14
    paineis = [(titulo, Tela.texto(painel).split("\n"))
               for painel, titulo in zip(paineis_tmux, titulos)]
    for i, (titulo, linhas) in enumerate(paineis):
        # O painel inteiro, menos as linhas vazias do fim (como recortar a captura de tela).
        linhas = linhas[:ALTURAS[i]]
        while linhas and not linhas[-1].strip():
            linhas.pop()
        paineis[i] = (titulo, linhas)
    largura = int(2 * margem + LARGURA * coluna)
    altura = sum(barra + len(l) * linha + 2 * 8 + espaco for _, l in paineis) - espaco
    imagem = Image.new("RGB", (largura, altura), "white")
    d = ImageDraw.Draw(imagem)
    y = 0
    for titulo, linhas in paineis:
        d.rectangle([0, y, largura - 1, y + barra], fill="#253549")
        d.text((margem, y + (barra - tamanho) // 2), titulo, font=negrito, fill="#f2f5f9")
        y += barra
        fundo = [0, y, largura - 1, y + len(linhas) * linha + 16]
        d.rectangle(fundo, fill="#fafaf7", outline="#253549", width=2)
        y += 8
        for texto in linhas:
            if any(re.search(p, texto) for p in destaques):
                d.rectangle([4, y - 2, largura - 5, y + linha - 3], fill="#ffe98a")
            d.text((margem, y), texto, font=fonte, fill="#1d1d1d")
            y += linha
        y += 8 + espaco
    imagem.save(caminho, optimize=True)
    return caminho


# ------------------------------------------------------------------ cenário

def principal(argumentos):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=sys.executable, help="o python dos consoles")
    parser.add_argument("--atraso", type=float, default=demo.ATRASO)
    opcoes = parser.parse_args(argumentos)
    if demo.portas_ocupadas():
        print("As portas %s estão em uso: feche a demonstração antes." % (demo.PORTAS,),
              file=sys.stderr)
        return 1
    if demo.sessao_existe(SESSAO):
        print("A sessão tmux %s já existe (tmux kill-session -t %s)." % (SESSAO, SESSAO),
              file=sys.stderr)
        return 1
    paineis = demo.abrir_tmux(opcoes.atraso, opcoes.python, SESSAO, "pilha", LARGURA,
                              sum(ALTURAS) + len(ALTURAS), ALTURAS)
    try:
        tela = Tela(paineis)
        titulos = [demo.tmux("display-message", "-p", "-t", p, "#{pane_title}") for p in paineis]
        esperar_unidos()
        tela.menu(tela.a, "INIT")
        tela.menu(tela.b, "INIT")

        # 1. O GET normal: A grava nome=Ana (PUT_OK espera o seguidor lento); B lê Ana.
        tela.menu(tela.a, "PUT", "nome", "Ana")
        tela.esperar(tela.a, r"^PUT_OK key: nome value Ana ", opcoes.atraso + PRAZO)
        tela.menu(tela.b, "GET", "nome")
        achado = tela.esperar(tela.b, r"^GET key: nome value: (\S+) ")
        if achado[-1] != "Ana":
            raise RuntimeError("o GET normal devolveu %s" % achado[-1])
        desenhar(tela.paineis, titulos, [r"GET key: ?nome"],
                 os.path.join(PASTA, "get_normal.png"))

        # 2. TRY_OTHER: A grava nome=Bia; enquanto o 10099 dorme, B repete GET nome.
        tela.menu(tela.a, "PUT", "nome", "Bia")
        # O seguidor rápido já aplicou Bia (ts 2); o lento só imprime depois do atraso.
        tela.esperar(tela.servidores[1], r"^REPLICATION key:nome value:Bia ts:2$")
        inicio = time.monotonic()
        for vez in range(2, 40):
            tela.menu(tela.b, "GET", "nome")
            valores = tela.esperar(tela.b, r"^GET key: nome value: (\S+) ", vezes=vez)
            if valores[-1] == "TRY_OTHER_SERVER_OR_LATER":
                break
            if re.search(r"^PUT_OK key: nome value Bia", Tela.texto(tela.a, True), re.M):
                raise RuntimeError("o PUT terminou antes de B cair no seguidor lento; rode de novo")
            time.sleep(0.6)
        else:
            raise RuntimeError("40 GETs sem TRY_OTHER_SERVER_OR_LATER")
        print("TRY_OTHER_SERVER_OR_LATER depois de %.1f s e %d GETs"
              % (time.monotonic() - inicio, vez - 1))
        desenhar(tela.paineis, titulos, [r"TRY_OTHER_SERVER_OR_LATER"],
                 os.path.join(PASTA, "try_other.png"))
        # A demonstração termina limpa: o PUT de A completa quando o seguidor lento acorda.
        tela.esperar(tela.a, r"^PUT_OK key: nome value Bia ", opcoes.atraso + PRAZO)
    finally:
        demo.tmux("kill-session", "-t", SESSAO)
    print("figuras gravadas em %s" % PASTA)
    return 0


if __name__ == "__main__":
    sys.exit(principal(sys.argv[1:]))
