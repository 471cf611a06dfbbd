"""O cliente (enunciado, seção 4): INIT que começa do zero, a palavra final de um PUT e o prazo de
cada tentativa. Processos e sockets de verdade; um servidor falso faz a falha acontecer na hora
certa, sem mexer no sorteio do cliente: cada ordem possível é conferida quando acontece.
"""

import re
import time

import pytest

from conftest import (PRAZO, Cliente, ClienteAberto, Mensagem, enderecos, esperar_unido,
                      get_direto, init_digitado, trocar)

PODE_OU_NAO = "Nenhum servidor confirmou; o PUT pode ou não ter sido feito."
# Rodadas até o sorteio passar por cada ordem: a chance de faltar uma é de (2/3)^60 ou menos.
RODADAS = 60


def reiniciar_vazios(cluster, procs, portas):
    """Para os três servidores e sobe outros três, vazios (sem --dados), nas mesmas portas."""
    for proc in procs:
        proc.terminar()
    novos = [cluster.servidor(portas[0])]
    novos += [cluster.servidor(porta, portas[0]) for porta in portas[1:]]
    for porta in portas[1:]:
        esperar_unido(novos[0], porta)
    return novos


def lider_e_dois_seguidores(cluster):
    """(líder, porta do líder, [seguidor1, seguidor2], portas dos seguidores), todos unidos."""
    (lider, seg1, seg2), portas = cluster.tres()
    return lider, portas[0], [seg1, seg2], portas[1:]


def exigir_gravado(procs_seguidores, key, timestamp):
    """O PUT foi feito: cada seguidor aplicou a REPLICATION e guarda a key com esse ts (sem
    líder, ele responde TRY_OTHER a todo GET, mas com o seu ts da key)."""
    for seguidor in procs_seguidores:
        assert "REPLICATION key:%s value:v ts:%d" % (key, timestamp) in seguidor.linhas_agora()
        resposta = get_direto(seguidor.porta, key)
        assert (resposta["key"], resposta["timestamp"]) == (key, timestamp), resposta


# ------------------------------------------------------- 1. INIT começa do zero


def test_init_zera_timestamps_conexoes_e_falhas(cluster, cliente):
    """[4a] INIT de novo: os servidores digitados agora, todo timestamp em 0, nenhuma conexão
    nem falha lembrada."""
    porta = cluster.lider().porta
    fora = cluster.porta_morta()
    cliente.inicializar(enderecos([porta, fora]))
    cliente.put("k", "v")
    cliente.get("k", servidor=("127.0.0.1", porta))
    with pytest.raises(ConnectionError):
        cliente.get("k", servidor=("127.0.0.1", fora))
    assert cliente.timestamps == {"k": 1} and cliente.conexoes and cliente.falhas
    sock = cliente.conexoes[("127.0.0.1", porta)][0]
    cliente.inicializar(enderecos([porta]))
    assert (cliente.servidores, cliente.timestamps, cliente.conexoes, cliente.falhas) == \
        ([("127.0.0.1", porta)], {}, {}, {})
    assert sock.fileno() == -1, "a conexão antiga ficou aberta"
    # Lista vazia é recusada e não apaga nada.
    cliente.put("k", "w")
    with pytest.raises(ValueError):
        cliente.inicializar([])
    assert cliente.servidores == [("127.0.0.1", porta)] and cliente.timestamps == {"k": 2}


def test_init_depois_dos_servidores_reiniciarem_vazios_biblioteca(cluster, cliente):
    """[4a][4c][5f] Servidores reiniciados vazios: o timestamp antigo dá TRY_OTHER para sempre;
    inicializar() de novo o zera e o GET volta a ler."""
    procs, portas = cluster.tres()
    cliente.inicializar(enderecos(portas))
    for i in range(3):
        cliente.put("k", "v%d" % i)
    assert cliente.timestamps == {"k": 3}
    reiniciar_vazios(cluster, procs, portas)
    assert trocar(portas[0], {"tipo": "PUT", "key": "k", "value": "novo"})["timestamp"] == 1
    for porta in portas:
        resposta, _ = cliente.get("k", servidor=("127.0.0.1", porta))
        assert (resposta.tipo, resposta.timestamp) == (Mensagem.TRY_OTHER_SERVER_OR_LATER, 1)
    assert cliente.timestamps == {"k": 3}
    cliente.inicializar(enderecos(portas))
    resposta, _ = cliente.get("k")
    assert (resposta.tipo, resposta.value, resposta.timestamp) == (Mensagem.GET_OK, "novo", 1)
    assert cliente.timestamps == {"k": 1}


def test_init_depois_dos_servidores_reiniciarem_vazios_pelo_menu(cluster):
    """[4a][4c] Pelo menu: depois que os três servidores reiniciaram vazios, o GET diz "meu
    timestamp 3 e do servidor 1" (TRY_OTHER); um novo INIT zera o timestamp e o GET lê."""
    procs, portas = cluster.tres()
    menu = ClienteAberto(cluster, "cliente-init")
    menu.digitar(init_digitado(portas) + "PUT\nk\nv1\nPUT\nk\nv2\nPUT\nk\nv3\n")
    menu.esperar_respostas(3)
    reiniciar_vazios(cluster, procs, portas)
    assert trocar(portas[0], {"tipo": "PUT", "key": "k", "value": "novo"})["timestamp"] == 1
    menu.digitar("GET\nk\n")
    menu.esperar_respostas(4)
    menu.digitar(init_digitado(portas) + "GET\nk\n")
    menu.esperar_respostas(5)
    linhas = menu.fim()
    assert [re.sub(r"127\.0\.0\.1:\d+", "S", linha) for linha in linhas] == [
        "PUT_OK key: k value v1 timestamp 1 realizada no servidor S",
        "PUT_OK key: k value v2 timestamp 2 realizada no servidor S",
        "PUT_OK key: k value v3 timestamp 3 realizada no servidor S",
        "GET key: k value: TRY_OTHER_SERVER_OR_LATER obtido do servidor S, meu timestamp 3 "
        "e do servidor 1",
        "GET key: k value: novo obtido do servidor S, meu timestamp 0 e do servidor 1"], linhas


# ------------------------------------- 2. a palavra final de um PUT (enunciado, seção 4b)


def test_lider_grava_e_cai_antes_de_responder_biblioteca(cluster, cliente, falsos):
    """[4b] O líder grava, replica e cai antes de responder; a repetição (mesmo id) cai num
    seguidor que diz "o líder está fora do ar": o put() diz que pode ou não ter sido feito (e
    foi). Antes da queda, quem sorteia um seguidor primeiro recebe PUT_OK."""
    lider, porta_lider, procs, seguidores = lider_e_dois_seguidores(cluster)
    # O falso fica na frente do líder de verdade, e o mata depois que ele respondeu.
    falso = falsos("repassa", porta_lider=porta_lider, depois_do_lider=lider.matar)
    for rodada in range(RODADAS):
        cliente.inicializar(enderecos([falso.porta] + seguidores))
        key = "k%d" % rodada
        try:
            resposta, servidor = cliente.put(key, "v")
        except ConnectionError as erro:
            # O falso foi sorteado primeiro: o líder gravou, e os seguidores disseram ERRO.
            assert [p["key"] for p in falso.pedidos] == [key]
            assert str(erro) == PODE_OU_NAO
            break
        # Um seguidor primeiro, com o líder vivo: feito, e o falso nem foi procurado.
        assert falso.pedidos == []
        assert (resposta.tipo, resposta.timestamp) == (Mensagem.PUT_OK, rodada + 1)
        assert servidor[1] in seguidores
    else:
        pytest.fail("o sorteio nunca começou pelo líder que cai")
    # "Pode ou não" era verdade: o PUT foi feito.
    exigir_gravado(procs, key, rodada + 1)
    assert cliente.timestamps.get(key, 0) == 0


def test_seguidor_sem_lider_biblioteca(cluster, cliente, falsos):
    """[4b] Líder fora do ar. Seguidor sorteado primeiro: ERRO dele, "o PUT não foi feito"
    (é verdade: nada foi enviado antes). Antes dele, uma tentativa que chegou a um servidor que
    caiu sem responder: "pode ou não ter sido feito", nunca "não foi feito"."""
    lider, porta_lider, _, seguidores = lider_e_dois_seguidores(cluster)
    lider.matar()
    falso = falsos("fecha")
    vistos = set()
    for rodada in range(RODADAS):
        if vistos == {"seguidor", "falso"}:
            break
        cliente.inicializar(enderecos([falso.porta] + seguidores))
        antes = len(falso.pedidos)
        try:
            resposta, servidor = cliente.put("k", "v%d" % rodada)
        except ConnectionError as erro:
            assert len(falso.pedidos) == antes + 1
            assert str(erro) == PODE_OU_NAO
            vistos.add("falso")
            continue
        assert len(falso.pedidos) == antes, "ERRO depois de tentar o falso virou palavra final"
        assert resposta.tipo == Mensagem.ERRO and servidor[1] in seguidores
        assert "127.0.0.1:%d" % porta_lider in resposta.value
        assert resposta.value.endswith("não foi feito")
        vistos.add("seguidor")
    assert vistos == {"seguidor", "falso"}, vistos
    for porta in seguidores:
        assert get_direto(porta, "k")["timestamp"] == 0   # nada gravado
    # Cada PUT digitado leva um id novo (o mesmo em todas as suas tentativas).
    ids = [p["id"] for p in falso.pedidos]
    assert len(set(ids)) == len(ids)


def test_lider_grava_e_cai_antes_de_responder_pelo_menu(cluster, falsos):
    """[4b] Pelo menu: PUT_OK quando um seguidor é sorteado com o líder vivo; quando o líder
    grava e cai antes de responder, a linha em stderr diz que o PUT pode ou não ter sido feito;
    com o líder fora do ar, um seguidor sorteado primeiro diz que não foi feito."""
    lider, porta_lider, procs, seguidores = lider_e_dois_seguidores(cluster)
    falso = falsos("repassa", porta_lider=porta_lider, depois_do_lider=lider.matar)
    menu = ClienteAberto(cluster, "cliente-put")
    vistos = set()
    caiu = None
    for rodada in range(RODADAS):
        if vistos >= {"caiu", "nao_feito", "pode_ou_nao"}:
            break
        if caiu is not None:
            falso.modo = "fecha"   # o líder já morreu: o falso só lê e fecha
        antes = len(falso.pedidos)
        menu.digitar(init_digitado([falso.porta] + seguidores) + "PUT\nk%d\nv\n" % rodada)
        menu.esperar_respostas(rodada + 1)
        linhas, erros = menu.linhas(), menu.erros()
        assert len(linhas) + len(erros) == rodada + 1, (linhas, erros)
        atingido = len(falso.pedidos) > antes
        if caiu is None and not atingido:
            esperada = (r"PUT_OK key: k%d value v timestamp %d realizada no servidor "
                        r"127\.0\.0\.1:(%d|%d)" % ((rodada, rodada + 1) + tuple(seguidores)))
            assert re.fullmatch(esperada, linhas[-1]), linhas
            vistos.add("put_ok")
            continue
        assert len(linhas) == (caiu if caiu is not None else rodada), "PUT_OK inesperado"
        if caiu is None:
            caiu = rodada
            assert erros[-1] == PODE_OU_NAO
            vistos.add("caiu")
        elif atingido:
            assert erros[-1] == PODE_OU_NAO
            vistos.add("pode_ou_nao")
        else:
            assert re.fullmatch(r"Erro do servidor 127\.0\.0\.1:(%d|%d): .*127\.0\.0\.1:%d.*"
                                r"não foi feito" % (tuple(seguidores) + (porta_lider,)),
                                erros[-1]), erros
            vistos.add("nao_feito")
    menu.fim(erros=erros)
    assert vistos >= {"caiu", "nao_feito", "pode_ou_nao"}, vistos
    # "Seguidor primeiro com o líder vivo" só existe se o líder não caiu logo na 1ª rodada.
    assert ("put_ok" in vistos) == (caiu > 0)
    # A rodada em que o líder caiu foi feita: "pode ou não" era verdade.
    exigir_gravado(procs, "k%d" % caiu, caiu + 1)


# ----------------------------------------------- 3. o prazo de cada tentativa de PUT


def test_put_que_passa_do_prazo_e_repetido_no_proximo_servidor_com_o_mesmo_id(cluster, cliente):
    """[4b][5e] Um PUT espera um seguidor lento mais que o prazo da tentativa: vai ao próximo
    servidor com o mesmo id, o líder responde a repetição com o ts do original; uma escrita só."""
    (_, seg1, lento), portas = cluster.tres(atraso=3)
    cliente.inicializar(enderecos(portas))
    assert cliente.put("antes", "x")[0].timestamp == 1   # passa a espera inicial do líder
    apressado = Cliente(prazo_put=2.0)
    apressado.inicializar(enderecos(portas))
    try:
        inicio = time.monotonic()
        resposta, servidor = apressado.put("k", "v")
        demora = time.monotonic() - inicio
        assert (resposta.tipo, resposta.timestamp) == (Mensagem.PUT_OK, 2)
        # O PUT_OK só sai depois dos 3 s do seguidor lento: a primeira tentativa venceu.
        assert demora > 2.0 and apressado.falhas and servidor not in apressado.falhas, \
            (demora, apressado.falhas, servidor)
        assert apressado.timestamps == {"k": 2}
    finally:
        apressado.fechar()
    for seguidor in (seg1, lento):
        assert [l for l in seguidor.linhas_agora() if l.startswith("REPLICATION key:k ")] == \
            ["REPLICATION key:k value:v ts:2"]
    assert get_direto(portas[0], "k") == {"tipo": "GET_OK", "key": "k", "value": "v",
                                          "timestamp": 2}


def test_put_sem_resposta_de_nenhum_servidor_pode_ou_nao_ter_sido_feito(cluster, falsos):
    """[4b] Servidores que recebem o PUT e nunca respondem (pausados): cada um custa um prazo,
    todos recebem o mesmo id, e a palavra final é "pode ou não ter sido feito"."""
    calados = [falsos("cala") for _ in range(3)]
    cliente = Cliente(prazo_put=0.5)
    try:
        cliente.inicializar(enderecos([f.porta for f in calados]))
        inicio = time.monotonic()
        with pytest.raises(ConnectionError) as erro:
            cliente.put("k", "v")
        demora = time.monotonic() - inicio
        assert str(erro.value) == PODE_OU_NAO
        assert 3 * 0.5 <= demora < 3 * 0.5 + PRAZO / 3, demora
        pedidos = [f.pedidos for f in calados]
        assert all(len(p) == 1 for p in pedidos), pedidos
        assert len({p[0]["id"] for p in pedidos}) == 1
        # Um que recusa a conexão e um que cala: ainda "pode ou não".
        cliente.inicializar(enderecos([cluster.porta_morta(), calados[0].porta]))
        with pytest.raises(ConnectionError, match="^%s$" % re.escape(PODE_OU_NAO)):
            cliente.put("k", "v")
        # Nenhum recebeu: "não foi feito".
        cliente.inicializar(enderecos([cluster.porta_morta()]))
        with pytest.raises(ConnectionError, match="não foi feito"):
            cliente.put("k", "v")
    finally:
        cliente.fechar()


def test_menu_put_sem_resposta_diz_pode_ou_nao_ter_sido_feito(cluster, falsos):
    """[4b] Pelo menu, com um prazo curto: servidores que nunca respondem dão uma linha em
    stderr, "pode ou não ter sido feito", nada em stdout, e o menu segue."""
    calados = [falsos("cala") for _ in range(3)]
    # O Cliente.py de sempre, com PRAZO_PUT de 0,5 s (o menu não tem opção para isso).
    prazo_curto = ("import sys, Cliente; Cliente.Cliente.PRAZO_PUT = 0.5; "
                   "sys.argv = sys.argv[1:]; sys.exit(Cliente.main())")
    menu = ClienteAberto(cluster, "cliente-prazo", prefixo=["-c", prazo_curto])
    menu.digitar(init_digitado([f.porta for f in calados]) + "PUT\nk\nv\n")
    menu.esperar_respostas(1)
    assert menu.fim(erros=[PODE_OU_NAO]) == []


# --------------------------------------------------- 4. stdout e stderr do menu


def test_erro_do_servidor_e_uma_linha_em_stderr(cluster, falsos):
    """[4b][4c] ERRO de um servidor: uma linha em stderr, com quebras de linha escapadas;
    stdout fica só com as linhas do enunciado (nenhuma aqui)."""
    falso = falsos("erro", erro="linha 1\nPUT_OK key: k value v timestamp 9")
    proc = cluster.cliente(init_digitado([falso.porta] * 3) + "PUT\nk\nv\nGET\nk\n")
    esperado = "Erro do servidor 127.0.0.1:%d: linha 1\\nPUT_OK key: k value v timestamp 9" \
        % falso.porta
    assert proc.fim(erros=[esperado] * 2) == []


# ----------------------------------------------- 5. o timestamp de cada key só sobe


def test_timestamp_do_cliente_so_sobe(cluster, falsos):
    """[4c] PUT_OK e GET_OK sobem o timestamp da key; uma resposta com ts menor que o que o
    cliente já viu (um PUT repetido, um servidor que erra) não o baixa: o GET seguinte leva o
    maior, e a key de outra não muda."""
    falso = falsos("responde", respostas=[
        {"tipo": "PUT_OK", "key": "k", "value": "v", "timestamp": 5},
        {"tipo": "PUT_OK", "key": "k", "value": "v", "timestamp": 3},
        {"tipo": "GET_OK", "key": "k", "value": "v", "timestamp": 4},
        {"tipo": "GET_OK", "key": "k", "value": "v", "timestamp": 7},
        {"tipo": "GET_OK", "key": "k", "value": "v", "timestamp": 7},
        {"tipo": "GET_OK", "key": "outra", "value": None, "timestamp": 0}])
    cliente = Cliente()
    try:
        cliente.inicializar(enderecos([falso.porta]))
        cliente.put("k", "v")
        cliente.put("k", "v")
        for key in ("k", "k", "k", "outra"):
            cliente.get(key)
    finally:
        cliente.fechar()
    enviados = [(p["tipo"], p["key"], p.get("timestamp")) for p in falso.pedidos]
    assert enviados == [("PUT", "k", None), ("PUT", "k", None), ("GET", "k", 5),
                        ("GET", "k", 5), ("GET", "k", 7), ("GET", "outra", 0)]
