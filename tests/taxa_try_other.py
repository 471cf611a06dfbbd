"""Quantas vezes a receita do README mostra TRY_OTHER_SERVER_OR_LATER? Não faz parte da suíte.

A receita (README, "Como mostrar TRY_OTHER_SERVER_OR_LATER de verdade", e relatorio/demo.py):
o seguidor 10099 sobe com --atraso-replicacao 30; o cliente A faz um PUT de uma key; enquanto
A espera, o cliente B faz GET dessa key de novo e de novo, uns doze, um logo depois do outro
(um a cada 2 s, mais ou menos). Este script repete isso N vezes com os programas de verdade:
três Servidor.py e dois Cliente.py, cada um no seu processo, em portas livres, com o menu
dirigido pelo stdin como uma pessoa digitaria. O servidor de cada GET é o sorteio do próprio
Cliente.py: nada é escolhido aqui.

Escala de tempo: com --escala 10 (o padrão), o atraso é 30/10 = 3 s, B começa 3/10 = 0,3 s
depois do PUT e faz um GET a cada 2/10 = 0,2 s. Os GETs que caem dentro da espera do PUT são
os mesmos da receita em tempo real (--escala 1 roda em tempo real: 30 s por tentativa).

Uma tentativa conta como acerto quando B imprime a linha GET ... TRY_OTHER_SERVER_OR_LATER
antes de A imprimir o PUT_OK daquela key.

    python tests/taxa_try_other.py                 # N = 200, ~11 min
    python tests/taxa_try_other.py -n 50 --gets 5  # outra receita, para comparar
"""

import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time

RAIZ = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IP = "127.0.0.1"
PRAZO = 30.0             # espera máxima por uma linha além do próprio atraso

# A receita em tempo real: atraso do seguidor lento, o tempo até B começar, o intervalo entre GETs.
ATRASO = 30.0
INICIO_B = 3.0
INTERVALO = 2.0
GETS = 12

LINHA_TRY = re.compile(r"GET key: (\S+) value: TRY_OTHER_SERVER_OR_LATER obtido do servidor")
LINHA_GET = re.compile(r"GET key: (\S+) value: (.*) obtido do servidor \S+:(\d+), meu timestamp")
LINHA_PUT_OK = re.compile(r"PUT_OK key: (\S+) value ")


def porta_livre():
    with socket.socket() as s:
        s.bind((IP, 0))
        return s.getsockname()[1]


def aceita(porta):
    try:
        with socket.create_connection((IP, porta), timeout=1):
            return True
    except OSError:
        return False


class Programa:
    """Servidor.py ou Cliente.py num processo; cada linha do stdout guardada com a hora em que
    chegou (as perguntas do menu, sem fim de linha, vêm grudadas na linha seguinte)."""

    def __init__(self, argumentos):
        ambiente = dict(os.environ, PYTHONUTF8="1", PYTHONIOENCODING="utf-8")
        self.linhas = []
        self.mudou = threading.Condition()
        self.erro = tempfile.TemporaryFile()
        self.popen = subprocess.Popen(
            [sys.executable, "-u"] + argumentos, cwd=RAIZ, env=ambiente,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.erro)
        threading.Thread(target=self.ler, daemon=True).start()

    def ler(self):
        for bruta in self.popen.stdout:
            with self.mudou:
                self.linhas.append((time.monotonic(), bruta.decode("utf-8", "replace").rstrip()))
                self.mudou.notify_all()

    def digitar(self, *linhas):
        self.popen.stdin.write("".join(linha + "\n" for linha in linhas).encode("utf-8"))
        self.popen.stdin.flush()

    def esperar(self, padrao, key, prazo):
        """(hora, linha) da primeira linha que casa com padrao para a key, ou None no prazo."""
        limite = time.monotonic() + prazo
        with self.mudou:
            while True:
                for hora, linha in self.linhas:
                    achado = padrao.search(linha)
                    if achado and achado.group(1) == key:
                        return hora, linha
                restante = limite - time.monotonic()
                if restante <= 0 or self.popen.poll() is not None:
                    return None
                self.mudou.wait(restante)

    def encerrar(self):
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(5)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)


def subir(atraso):
    """Líder, seguidor rápido e seguidor lento; devolve (programas, portas) com todos prontos."""
    portas = [porta_livre() for _ in range(3)]
    lider = [IP, str(portas[0])]
    servidores = [Programa(["Servidor.py", IP, str(portas[0])] + lider),
                  Programa(["Servidor.py", IP, str(portas[1])] + lider),
                  Programa(["Servidor.py", IP, str(portas[2])] + lider
                           + ["--atraso-replicacao", "%g" % atraso])]
    limite = time.monotonic() + PRAZO
    while not all(aceita(p) for p in portas):
        if time.monotonic() > limite or any(s.popen.poll() is not None for s in servidores):
            raise SystemExit("os servidores não subiram")
        time.sleep(0.05)
    return servidores, portas


def iniciar_cliente(portas):
    cliente = Programa(["Cliente.py"])
    cliente.digitar("INIT", *[campo for porta in portas for campo in (IP, str(porta))])
    return cliente


def tentativa(a, b, key, escala, gets):
    """Uma rodada da receita; devolve (acertou, GETs de B até o TRY, servidores que B sorteou)."""
    atraso = ATRASO / escala
    inicio = time.monotonic()
    a.digitar("PUT", key, "v")
    time.sleep(INICIO_B / escala)
    for i in range(gets):
        b.digitar("GET", key)
        if i + 1 < gets:
            time.sleep(INTERVALO / escala)
    put_ok = a.esperar(LINHA_PUT_OK, key, atraso + PRAZO)
    if put_ok is None:
        raise SystemExit("o PUT de %s não terminou; stderr de A:\n%s" % (key, ler_erro(a)))
    # Todas as respostas de B a esta key (com prazo: a última pode estar chegando).
    limite = time.monotonic() + PRAZO
    while True:
        with b.mudou:
            respostas = [(hora, linha) for hora, linha in b.linhas
                         if (LINHA_GET.search(linha) or [None, None])[1] == key]
        if len(respostas) >= gets or time.monotonic() > limite:
            break
        time.sleep(0.05)
    sorteados = [LINHA_GET.search(linha).group(3) for _, linha in respostas]
    for n, (hora, linha) in enumerate(respostas, 1):
        if LINHA_TRY.search(linha):
            return hora < put_ok[0], n, sorteados, hora - inicio, put_ok[0] - inicio
    return False, None, sorteados, None, put_ok[0] - inicio


def ler_erro(programa):
    programa.erro.seek(0)
    return programa.erro.read().decode("utf-8", "replace")


def principal(argumentos):
    parser = argparse.ArgumentParser(description="Taxa de TRY_OTHER_SERVER_OR_LATER da receita.")
    parser.add_argument("-n", type=int, default=200, help="tentativas (padrão 200)")
    parser.add_argument("--escala", type=float, default=10.0,
                        help="divide todos os tempos da receita (padrão 10; 1 = tempo real)")
    parser.add_argument("--gets", type=int, default=GETS, help="GETs de B por PUT (padrão 12)")
    opcoes = parser.parse_args(argumentos)
    print("Receita: --atraso-replicacao %g; B começa %g s depois do PUT e faz %d GETs, um a "
          "cada %g s (tempo real / %g)." % (ATRASO / opcoes.escala, INICIO_B / opcoes.escala,
                                            opcoes.gets, INTERVALO / opcoes.escala,
                                            opcoes.escala), flush=True)
    servidores, portas = subir(ATRASO / opcoes.escala)
    a = iniciar_cliente(portas)
    b = iniciar_cliente(portas)
    # Como na demonstração, os servidores já estão de pé há um tempo: um PUT antes das
    # tentativas garante os dois seguidores unidos ao líder (o PUT_OK espera o lento também).
    a.digitar("PUT", "aquecimento", "v")
    if a.esperar(LINHA_PUT_OK, "aquecimento", ATRASO / opcoes.escala + PRAZO) is None:
        raise SystemExit("o PUT de aquecimento não terminou:\n%s" % ler_erro(a))
    acertos = 0
    posicoes = {}
    try:
        for i in range(1, opcoes.n + 1):
            acertou, n, sorteados, quando, fim = tentativa(a, b, "k%d" % i, opcoes.escala,
                                                          opcoes.gets)
            acertos += acertou
            posicoes[n if acertou else "falhou"] = posicoes.get(n if acertou else "falhou", 0) + 1
            lento = str(portas[2])
            print("%3d: %s  sorteio de B: %s  (PUT_OK em %.1f s%s)"
                  % (i, "TRY no GET %d" % n if acertou else "sem TRY    ",
                     "".join("L" if p == lento else "r" for p in sorteados), fim,
                     ", TRY em %.1f s" % quando if quando is not None else ""), flush=True)
    finally:
        for programa in [a, b] + servidores:
            programa.encerrar()
    print("\nTRY_OTHER_SERVER_OR_LATER dentro da espera do PUT: %d de %d tentativas (%.1f%%)"
          % (acertos, opcoes.n, 100.0 * acertos / opcoes.n))
    print("Em que GET de B o TRY apareceu: %s"
          % ", ".join("%s: %d" % (k, v) for k, v in sorted(
              posicoes.items(), key=lambda par: (par[0] == "falhou", str(par[0]).zfill(3)))))
    print("(L = GET no seguidor lento, r = num servidor rápido)")
    return 0


if __name__ == "__main__":
    sys.exit(principal(sys.argv[1:]))
