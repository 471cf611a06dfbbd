"""Diagrama de sequência de um PUT feito num seguidor (matplotlib): gera put_seguidor.png.

    python -m pip install -r relatorio/figuras/requisitos.txt    # uma vez: o matplotlib
    python relatorio/figuras/diagrama.py

Mensagens e campos da SPEC (seções 4 e 5), no tamanho final da página (17 cm de largura).
"""

import os
import sys

try:
    import matplotlib
except ImportError:
    sys.exit("O diagrama precisa do matplotlib (os testes não): "
             "python -m pip install -r relatorio/figuras/requisitos.txt")

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyBboxPatch, Rectangle  # noqa: E402

PASTA = os.path.dirname(os.path.abspath(__file__))
AZUL, VERDE, CINZA, LARANJA = "#1f4e8c", "#2e7d32", "#5f6b7a", "#a45200"
ESCALA = 0.8   # compressão vertical: o diagrama cabe em meia página
MONO, SANS = "DejaVu Sans Mono", "DejaVu Sans"

# Participantes: (título, subtítulo); x de cada linha de vida.
PARTES = [("Cliente A", "127.0.0.1:51234"), ("Servidor 2", "seguidor · 10098"),
          ("Servidor 1", "líder · 10097"), ("Servidor 3", "seguidor · 10099")]
X = [0.0, 2.35, 4.7, 7.05]
FIM = 11.35 * ESCALA

# (de, para, y, rótulo, canal?, resposta?)
MENSAGENS = [
    (1, 2, 1.05, "JOIN origem=…:10098", True, False),
    (2, 1, 1.6, "JOIN_OK dados (snapshot)", True, True),
    (3, 2, 2.15, "JOIN  /  JOIN_OK", True, False),
    (0, 1, 3.55, "PUT nome=Ana", False, False),
    (1, 2, 4.55, "PUT nome=Ana\norigem=…:51234", False, False),
    (2, 1, 6.75, "REPLICATION nome,Ana,1", True, False),
    (2, 3, 6.75, "REPLICATION nome,Ana,1", True, False),
    (1, 2, 8.05, "REPLICATION_OK ts=1", True, True),
    (3, 2, 8.6, "REPLICATION_OK ts=1", True, True),
    (2, 1, 9.75, "PUT_OK ts=1", False, True),
    (1, 0, 10.3, "PUT_OK ts=1", False, True),
]
# (participante, y, texto, lado): o que acontece dentro do servidor, ao lado da linha de vida.
NOTAS = [
    (1, 4.1, "Encaminhando PUT ...", "esquerda"),
    (2, 5.55, "trava de PUT:\ncontador 0 → 1 (ts=1)\ntabela[nome] = (Ana, 1)\n"
              "REPLICATION nos canais", "direita"),
    (1, 7.25, "aplica ts=1", "direita"),
    (3, 7.3, "aplica ts=1 (se lento:\ndepois do atraso)", "esquerda"),
    (2, 9.2, "último REPLICATION_OK:\nEnviando PUT_OK ...", "direita"),
    (0, 10.85, "timestamps[nome] = 1", "direita"),
]


def desenhar(caminho):
    figura, eixo = plt.subplots(figsize=(6.9, 5.15), dpi=300)
    eixo.set_xlim(-0.95, 8.0)
    eixo.set_ylim(FIM + 0.95, -0.65)
    eixo.axis("off")
    for x, (titulo, subtitulo) in zip(X, PARTES):
        eixo.add_patch(FancyBboxPatch((x - 0.9, -0.55), 1.8, 0.95, boxstyle="round,pad=0.02",
                                      facecolor="#e6eef8", edgecolor=AZUL, linewidth=1))
        eixo.text(x, -0.22, titulo, ha="center", va="center", fontsize=8.2, weight="bold",
                  color=AZUL, family=SANS)
        eixo.text(x, 0.14, subtitulo, ha="center", va="center", fontsize=6.8, color=CINZA,
                  family=SANS)
        eixo.plot([x, x], [0.42, FIM], color="#9aa7b8", linewidth=0.8, linestyle=(0, (4, 3)),
                  zorder=0)
    # Separador: primeiro os canais (ao subir), depois o PUT.
    eixo.plot([-0.9, 7.95], [2.75 * ESCALA] * 2, color="#c3ccd8", linewidth=0.8, linestyle=":")
    eixo.text(-0.88, 2.62 * ESCALA, "ao subir, cada seguidor abre o seu canal (JOIN)", fontsize=6.6,
              color=CINZA, style="italic", va="bottom", family=SANS)
    eixo.text(-0.88, 2.88 * ESCALA, "depois: o cliente A faz PUT no servidor 2", fontsize=6.6,
              color=CINZA, style="italic", va="top", family=SANS)
    # No líder: a trava de PUT (cheia) e a espera pelos REPLICATION_OK (hachurada).
    eixo.add_patch(Rectangle((X[2] - 0.07, 4.62 * ESCALA), 0.14, 2.18 * ESCALA, facecolor="#f3d9b1",
                             edgecolor=LARANJA, linewidth=0.7, zorder=2))
    eixo.add_patch(Rectangle((X[2] - 0.07, 6.8 * ESCALA), 0.14, 1.8 * ESCALA, facecolor="white",
                             edgecolor=LARANJA, linewidth=0.7, hatch="/////", zorder=2))
    # No seguidor 2: a thread da conexão do cliente espera a resposta do líder.
    eixo.add_patch(Rectangle((X[1] - 0.07, 3.6 * ESCALA), 0.14, 6.2 * ESCALA, facecolor="#eef1f5",
                             edgecolor="#9aa7b8", linewidth=0.6, zorder=1))
    for de, para, y, rotulo, canal, resposta in MENSAGENS:
        y *= ESCALA
        cor = VERDE if canal else AZUL
        x0, x1 = X[de], X[para]
        direcao = 1 if x1 > x0 else -1
        x0, x1 = x0 + 0.08 * direcao, x1 - 0.08 * direcao
        eixo.annotate("", xy=(x1, y), xytext=(x0, y), zorder=3,
                      arrowprops=dict(arrowstyle="-|>", color=cor, linewidth=1.1,
                                      linestyle="--" if resposta else "-", shrinkA=0, shrinkB=0,
                                      mutation_scale=9))
        eixo.text((x0 + x1) / 2, y - 0.07, rotulo, ha="center", va="bottom", fontsize=6.9,
                  color=cor, family=MONO, linespacing=1.15, zorder=4)
    for parte, y, texto, lado in NOTAS:
        y *= ESCALA
        direita = lado == "direita"
        eixo.text(X[parte] + (0.16 if direita else -0.16), y, texto,
                  ha="left" if direita else "right", va="center", fontsize=6.4, color=LARANJA,
                  family=MONO, linespacing=1.2, zorder=5,
                  bbox=dict(facecolor="#fff8ee", edgecolor="#e6c597", linewidth=0.6,
                            boxstyle="round,pad=0.28"))
    # Legenda, embaixo.
    y = FIM + 0.55
    itens = [(AZUL, "-", "conexão do cliente (e de encaminhamento)"),
             (VERDE, "-", "canal de replicação (aberto pelo JOIN)"),
             (CINZA, "--", "resposta")]
    for x, (cor, estilo, texto) in zip((-0.9, 2.55, 5.9), itens):
        eixo.plot([x, x + 0.4], [y, y], color=cor, linewidth=1.1, linestyle=estilo)
        eixo.text(x + 0.5, y, texto, fontsize=6.5, color="#333333", va="center", family=SANS)
    figura.subplots_adjust(left=0.005, right=0.995, top=0.995, bottom=0.005)
    figura.savefig(caminho, dpi=300, facecolor="white")
    plt.close(figura)
    return caminho


if __name__ == "__main__":
    print(desenhar(os.path.join(PASTA, "put_seguidor.png")))
