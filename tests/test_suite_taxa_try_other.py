"""A receita do TRY_OTHER_SERVER_OR_LATER (README, relatorio/demo.py), rodada de verdade: três
Servidor.py e dois Cliente.py, o menu digitado pelo stdin, os tempos divididos por ESCALA. A
taxa medida tem de bater com a conta do relatório (demo.chance_de_try)."""

import importlib.util
import os

import taxa_try_other as taxa

from conftest import RAIZ

TENTATIVAS = 10
# Os tempos da receita divididos por 30: o seguidor lento leva 1 s em cada REPLICATION, e B
# digita um GET a cada 67 ms (um GET pelo menu leva poucos milissegundos aqui). Os GETs que caem
# na espera do PUT são os mesmos da receita em tempo real; se a máquina atrasar algum para
# depois do PUT_OK, a conta é feita com os que couberam.
ESCALA = 30.0
GETS = 6   # os "uns 6" GETs por rodada do README
# Aceita a contagem se a chance de ela sair, para um lado ou para o outro, for de pelo menos 1
# em um milhão (o teste falha por azar menos que isso).
CAUDA = 1e-6


def carregar_demo():
    especificacao = importlib.util.spec_from_file_location(
        "demo", os.path.join(RAIZ, "relatorio", "demo.py"))
    demo = importlib.util.module_from_spec(especificacao)
    especificacao.loader.exec_module(demo)
    return demo


def distribuicao(chances):
    """P(acertos = h), h = 0..n, para tentativas independentes com essas chances."""
    probabilidades = [1.0]
    for chance in chances:
        proxima = [0.0] * (len(probabilidades) + 1)
        for acertos, p in enumerate(probabilidades):
            proxima[acertos] += p * (1 - chance)
            proxima[acertos + 1] += p * chance
        probabilidades = proxima
    return probabilidades


# Lento (~13 s): dez rodadas da receita, cada uma esperando o seguidor lento (1 s).
def test_receita_mostra_try_other_na_taxa_da_conta(cluster):
    """[5f][4c] A receita do README (seguidor lento, um PUT, GETs seguidos de outro cliente)
    mostra TRY_OTHER_SERVER_OR_LATER dentro da espera do PUT na taxa que a conta do relatório
    dá para o número de GETs que couberam na espera."""
    demo = carregar_demo()
    _, portas = cluster.tres(atraso=taxa.ATRASO / ESCALA)
    tentativas, fins = taxa.rodadas(portas, TENTATIVAS, ESCALA, GETS)
    assert fins == [(0, ""), (0, "")], fins   # os dois clientes saíram limpos
    acertos = sum(t[0] for t in tentativas)
    antes_do_put_ok = [t[5] for t in tentativas]
    probabilidades = distribuicao([demo.chance_de_try(gets) for gets in antes_do_put_ok])
    esperado = sum(demo.chance_de_try(gets) for gets in antes_do_put_ok)
    print("TRY dentro da espera: %d de %d (a conta dá %.1f); GETs antes do PUT_OK: %s"
          % (acertos, TENTATIVAS, esperado, antes_do_put_ok))
    assert sum(probabilidades[:acertos + 1]) >= CAUDA and \
        sum(probabilidades[acertos:]) >= CAUDA, \
        "%d acertos em %d; a conta dá %.1f (GETs antes do PUT_OK: %s)" \
        % (acertos, TENTATIVAS, esperado, antes_do_put_ok)
