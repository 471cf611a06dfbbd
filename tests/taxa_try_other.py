"""Quantas vezes a receita do README mostra TRY_OTHER_SERVER_OR_LATER?

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

A suíte roda poucas tentativas desta mesma receita, mais depressa, e confere a taxa medida com a
conta (tests/test_suite_taxa_try_other.py); aqui são muitas, para o número do README.
"""

import argparse
import os
import random
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

    def fim(self):
        """Fecha o stdin (a pessoa parou de digitar): o programa sai sozinho. Devolve (código de
        saída, stderr)."""
        try:
            self.popen.stdin.close()
        except OSError:
            pass  # o programa já saiu: o pipe está quebrado
        try:
            self.popen.wait(PRAZO)
        except subprocess.TimeoutExpired:
            self.encerrar()
        return self.popen.returncode, ler_erro(self)

    def encerrar(self):
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(5)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)


def subir_servidor(porta_lider, *extras):
    """Um Servidor.py numa porta ao acaso (outra, se ela estiver em uso: o servidor sai com
    código 2); porta_lider None: ele é o líder. Devolve (programa, porta), já aceitando."""
    while True:
        porta = random.randrange(20000, 32000)
        lider = porta if porta_lider is None else porta_lider
        programa = Programa(["Servidor.py", IP, str(porta), IP, str(lider)] + list(extras))
        limite = time.monotonic() + PRAZO
        while not aceita(porta):
            if programa.popen.poll() is not None or time.monotonic() > limite:
                break
            time.sleep(0.05)
        else:
            return programa, porta
        programa.encerrar()
        if programa.popen.returncode != 2:
            raise SystemExit("o servidor não subiu:\n%s" % ler_erro(programa))


def subir(atraso):
    """Líder, seguidor rápido e seguidor lento; devolve (programas, portas) com todos prontos."""
    lider, porta_lider = subir_servidor(None)
    rapido, porta_rapido = subir_servidor(porta_lider)
    lento, porta_lento = subir_servidor(porta_lider, "--atraso-replicacao", "%g" % atraso)
    return [lider, rapido, lento], [porta_lider, porta_rapido, porta_lento]


def iniciar_cliente(portas):
    cliente = Programa(["Cliente.py"])
    cliente.digitar("INIT", *[campo for porta in portas for campo in (IP, str(porta))])
    return cliente


def tentativa(a, b, key, escala, gets):
    """Uma rodada da receita; devolve (acertou, GETs de B até o TRY, servidores que B sorteou,
    segundos até o TRY, segundos até o PUT_OK, GETs de B respondidos antes do PUT_OK)."""
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
    # Os GETs de B respondidos antes do PUT_OK de A: só neles o TRY pode aparecer.
    antes = len([hora for hora, _ in respostas if hora < put_ok[0]])
    for n, (hora, linha) in enumerate(respostas, 1):
        if LINHA_TRY.search(linha):
            return hora < put_ok[0], n, sorteados, hora - inicio, put_ok[0] - inicio, antes
    return False, None, sorteados, None, put_ok[0] - inicio, antes


def ler_erro(programa):
    programa.erro.seek(0)
    return programa.erro.read().decode("utf-8", "replace")


def rodadas(portas, n, escala, gets, mostrar=None):
    """n tentativas da receita com os servidores em portas (o lento por último), cada uma com
    a sua key; devolve (tentativas, fins): o que tentativa() devolveu em cada uma, e (código de
    saída, stderr) dos clientes A e B no fim. mostrar(i, tentativa) é chamado a cada uma."""
    a = iniciar_cliente(portas)
    b = iniciar_cliente(portas)
    resultados = []
    try:
        # Como na demonstração, os servidores já estão de pé há um tempo: um PUT antes das
        # tentativas garante os dois seguidores unidos ao líder (o PUT_OK espera o lento também).
        a.digitar("PUT", "aquecimento", "v")
        if a.esperar(LINHA_PUT_OK, "aquecimento", ATRASO / escala + PRAZO) is None:
            raise SystemExit("o PUT de aquecimento não terminou:\n%s" % ler_erro(a))
        for i in range(1, n + 1):
            resultados.append(tentativa(a, b, "k%d" % i, escala, gets))
            if mostrar is not None:
                mostrar(i, resultados[-1])
    finally:
        fins = [a.fim(), b.fim()]
    return resultados, fins


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
    lento = str(portas[2])
    posicoes = {}

    def mostrar(i, resultado):
        acertou, n, sorteados, quando, fim, _ = resultado
        posicoes[n if acertou else "falhou"] = posicoes.get(n if acertou else "falhou", 0) + 1
        print("%3d: %s  sorteio de B: %s  (PUT_OK em %.1f s%s)"
              % (i, "TRY no GET %d" % n if acertou else "sem TRY    ",
                 "".join("L" if p == lento else "r" for p in sorteados), fim,
                 ", TRY em %.1f s" % quando if quando is not None else ""), flush=True)
    try:
        resultados, _ = rodadas(portas, opcoes.n, opcoes.escala, opcoes.gets, mostrar)
    finally:
        for programa in servidores:
            programa.encerrar()
    acertos = sum(r[0] for r in resultados)
    print("\nTRY_OTHER_SERVER_OR_LATER dentro da espera do PUT: %d de %d tentativas (%.1f%%)"
          % (acertos, opcoes.n, 100.0 * acertos / opcoes.n))
    print("Em que GET de B o TRY apareceu: %s"
          % ", ".join("%s: %d" % (k, v) for k, v in sorted(
              posicoes.items(), key=lambda par: (par[0] == "falhou", str(par[0]).zfill(3)))))
    print("(L = GET no seguidor lento, r = num servidor rápido)")
    return 0


if __name__ == "__main__":
    sys.exit(principal(sys.argv[1:]))
