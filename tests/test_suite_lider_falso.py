"""O lado do seguidor no canal de replicação (enunciado, seção 5d, e o JOIN), contra um líder
falso: um servidor pequeno aqui no teste que fala o protocolo à mão e manda o que um líder de
verdade nunca mandaria (uma REPLICATION mais velha, uma cópia mais velha)."""

import pytest

from conftest import esperar, get_direto


def replication(key, value, timestamp):
    return {"tipo": "REPLICATION", "key": key, "value": value, "timestamp": timestamp}


def confirmado(mensagem):
    """(tipo, timestamp) de um REPLICATION_OK; a key que ele pode levar não importa aqui."""
    return (mensagem["tipo"], mensagem["timestamp"]) if mensagem else None


@pytest.fixture
def unido(cluster, falso):
    """Um seguidor de verdade, vazio, que entrou no líder falso com a cópia {k: v em 5}."""
    seguidor = cluster.seguidor(falso.porta)
    join = falso.aceitar()
    assert (join["tipo"], join["origem"], join["timestamp"], join.get("dados")) == \
        ("JOIN", "127.0.0.1:%d" % seguidor.porta, 0, None), join
    falso.enviar({"tipo": "JOIN_OK", "dados": {"k": ["v", 5]}, "timestamp": 5})
    assert confirmado(falso.receber()) == ("REPLICATION_OK", 5)
    return seguidor


def test_seguidor_entra_com_join_e_instala_a_copia_do_lider(falso, unido):
    """[5a] O seguidor abre o canal com JOIN (o endereço dele, ts 0, sem dados), instala a
    cópia do JOIN_OK e a confirma com REPLICATION_OK no ts dela."""
    assert get_direto(unido.porta, "k") == {"tipo": "GET_OK", "key": "k", "value": "v",
                                             "timestamp": 5}


def test_replication_e_aplicada_em_ordem_e_confirmada(falso, unido):
    """[5d] REPLICATIONs seguidas no canal: cada uma é aplicada, impressa e confirmada com o
    ts dela, na ordem em que chegou."""
    falso.enviar(replication("k", "v7", 7), replication("m", "m8", 8), replication("k", "v9", 9))
    assert [confirmado(falso.receber()) for _ in range(3)] == \
        [("REPLICATION_OK", 7), ("REPLICATION_OK", 8), ("REPLICATION_OK", 9)]
    assert get_direto(unido.porta, "k") == {"tipo": "GET_OK", "key": "k", "value": "v9",
                                             "timestamp": 9}
    assert get_direto(unido.porta, "m", 8) == {"tipo": "GET_OK", "key": "m", "value": "m8",
                                                "timestamp": 8}
    assert [linha for linha in unido.linhas_agora() if linha.startswith("REPLICATION")] == \
        ["REPLICATION key:k value:v7 ts:7", "REPLICATION key:m value:m8 ts:8",
         "REPLICATION key:k value:v9 ts:9"]
    assert unido.erro() == ""


def test_replication_mais_velha_que_a_do_seguidor_e_confirmada_e_nao_aplicada(falso, unido):
    """[5d] Uma REPLICATION com ts menor que o que o seguidor já tem da key recebe
    REPLICATION_OK, mas a key fica com o valor mais novo."""
    falso.enviar(replication("k", "novo", 7))
    assert confirmado(falso.receber()) == ("REPLICATION_OK", 7)
    falso.enviar(replication("k", "velho", 6))
    # O REPLICATION_OK sai depois de aplicar (ou não): daqui o GET vê o que ficou.
    assert confirmado(falso.receber()) == ("REPLICATION_OK", 6)
    assert get_direto(unido.porta, "k") == {"tipo": "GET_OK", "key": "k", "value": "novo",
                                             "timestamp": 7}


def voltar(falso):
    """O seguidor aplica k=novo em 7, o canal cai e ele volta: o JOIN novo (dict)."""
    falso.enviar(replication("k", "novo", 7))
    assert confirmado(falso.receber()) == ("REPLICATION_OK", 7)
    falso.fechar_canal()
    return falso.aceitar()


def test_seguidor_que_perde_o_canal_refaz_o_join_com_o_maior_ts_e_a_tabela(falso, unido):
    """[5a] O canal cai e o seguidor refaz o JOIN com o endereço dele, o maior ts que recebeu e
    a tabela inteira: é por eles que um líder que reiniciou recupera a história."""
    join = voltar(falso)
    assert (join["tipo"], join["origem"], join["timestamp"], join["dados"]) == \
        ("JOIN", "127.0.0.1:%d" % unido.porta, 7, {"k": ["novo", 7]}), join


def test_copia_mais_velha_que_o_seguidor_e_recusada(falso, unido):
    """[5a] Uma cópia (JOIN_OK) abaixo do ts do seguidor que voltou é recusada: ele não a
    confirma, fecha o canal, diz uma linha em stderr e guarda a tabela que tinha."""
    voltar(falso)
    falso.enviar({"tipo": "JOIN_OK", "dados": {}, "timestamp": 3})
    assert falso.receber() is None, "o seguidor confirmou uma cópia mais velha que a dele"
    assert get_direto(unido.porta, "k") == {"tipo": "GET_OK", "key": "k", "value": "novo",
                                             "timestamp": 7}
    # O aviso sai depois que o canal fecha: espera por ele.
    erros = esperar(lambda: unido.erro().splitlines(), motivo="o aviso da recusa")
    assert len(erros) == 1 and "127.0.0.1:%d" % falso.porta in erros[0], erros
