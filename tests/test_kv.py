"""O KV store de ponta a ponta: processos de verdade, sockets de verdade (enunciado, seções 4 a 6)."""

import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading

import pytest

from conftest import (AMBIENTE_FILHO, DETALHE, PRAZO, RAIZ, Cliente, Mensagem, Processo,
                      enderecos, esperar, esperar_unido, estado, exigir_console_limpo,
                      get_direto, init_digitado, linha_json, so_posix, trocar)

# O seguidor lento dos testes de 5e: uma REPLICATION leva 1 s para ser aplicada nele. Um PUT_OK
# que não esperasse o REPLICATION_OK chegaria ~1 s antes de o lento ter o valor, e o teste, que
# olha o lento milissegundos depois do PUT_OK, veria a falta (sem seguidor lento, ele aplicaria
# antes de o teste olhar, e a falha ficaria invisível).
LENTO = 1


# ----------------------------------------------------------- linhas exatas


def test_linhas_exatas_de_put_no_lider(cluster, cliente):
    """[5c][5d][5e] PUT no líder: cada servidor imprime exatamente as linhas da seção 6."""
    (lider, seg1, lento), portas = cluster.tres(atraso=LENTO)
    cliente.inicializar(enderecos(portas))
    resposta, servidor = cliente.put("chave", "valor 1", servidor=("127.0.0.1", portas[0]))
    assert resposta.tipo == Mensagem.PUT_OK and resposta.timestamp == 1
    eu = "127.0.0.1:%d" % cliente.conexoes[servidor][0].getsockname()[1]
    # PUT_OK só depois do REPLICATION_OK de todos: a linha já está nos dois seguidores,
    # também no lento.
    for seguidor in (lento, seg1):
        assert seguidor.linhas_agora() == ["REPLICATION key:chave value:valor 1 ts:1"]
    assert lider.linhas_agora() == ["Cliente %s PUT key:chave value:valor 1" % eu,
                                    "Enviando PUT_OK ao Cliente %s da key:chave ts:1" % eu]


def test_put_no_seguidor_e_encaminhado_com_endereco_do_cliente(cluster, cliente):
    """[5c] PUT num seguidor: ele encaminha, e o líder imprime o endereço do próprio cliente."""
    (lider, seg1, lento), portas = cluster.tres(atraso=LENTO)
    cliente.inicializar(enderecos(portas))
    resposta, servidor = cliente.put("k", "v", servidor=("127.0.0.1", portas[1]))
    assert (resposta.tipo, resposta.key, resposta.value, resposta.timestamp) == \
        (Mensagem.PUT_OK, "k", "v", 1)
    eu = "127.0.0.1:%d" % cliente.conexoes[servidor][0].getsockname()[1]
    assert lento.linhas_agora() == ["REPLICATION key:k value:v ts:1"]
    assert seg1.linhas_agora() == ["Encaminhando PUT key:k value:v",
                                   "REPLICATION key:k value:v ts:1"]
    assert lider.linhas_agora() == ["Cliente %s PUT key:k value:v" % eu,
                                    "Enviando PUT_OK ao Cliente %s da key:k ts:1" % eu]


def test_linhas_exatas_de_get(cluster, cliente):
    """[5f] GET: linha exata com valor, NULL e TRY_OTHER_SERVER_OR_LATER."""
    (lider, seg1, _), portas = cluster.tres()
    cliente.inicializar(enderecos(portas))
    cliente.put("k", "v", servidor=("127.0.0.1", portas[0]))
    lider.marcar()
    seg1.marcar()
    eu_lider = cliente.get("k", servidor=("127.0.0.1", portas[0]))
    cliente.get("sumida", servidor=("127.0.0.1", portas[1]))
    # Timestamp do cliente maior que o do servidor: TRY_OTHER (o cliente "viu o futuro").
    resposta = get_direto(portas[1], "k", 7)
    assert resposta == {"tipo": "TRY_OTHER_SERVER_OR_LATER", "key": "k", "timestamp": 1}
    porta_cliente = cliente.conexoes[("127.0.0.1", portas[0])][0].getsockname()[1]
    assert eu_lider[0].tipo == Mensagem.GET_OK
    assert lider.linhas_agora() == ["Cliente 127.0.0.1:%d GET key:k ts:1. Meu ts é 1, portanto "
                                    "devolvendo v" % porta_cliente]
    linhas = seg1.linhas_agora()
    porta_cliente = cliente.conexoes[("127.0.0.1", portas[1])][0].getsockname()[1]
    assert linhas[0] == ("Cliente 127.0.0.1:%d GET key:sumida ts:0. Meu ts é 0, portanto "
                         "devolvendo NULL" % porta_cliente)
    assert re.fullmatch(r"Cliente 127\.0\.0\.1:\d+ GET key:k ts:7\. Meu ts é 1, portanto "
                        r"devolvendo TRY_OTHER_SERVER_OR_LATER", linhas[1])
    assert len(linhas) == 2


def test_linhas_exatas_do_menu_do_cliente(cluster):
    """[4a][4b][4c] Menu pelo stdin: INIT, PUT e GET imprimem exatamente as linhas da seção 6."""
    _, portas = cluster.tres()
    entrada = init_digitado(portas) + "put\nk\nolá mundo\nGeT\nk\nGET\nnada\n"
    linhas = cluster.cliente(entrada).fim()
    assert len(linhas) == 3, linhas
    put = re.fullmatch(r"PUT_OK key: k value olá mundo timestamp 1 realizada no servidor "
                       r"127\.0\.0\.1:(\d+)", linhas[0])
    get = re.fullmatch(r"GET key: k value: olá mundo obtido do servidor 127\.0\.0\.1:(\d+), "
                       r"meu timestamp 1 e do servidor 1", linhas[1])
    nada = re.fullmatch(r"GET key: nada value: NULL obtido do servidor 127\.0\.0\.1:(\d+), "
                        r"meu timestamp 0 e do servidor 0", linhas[2])
    assert put and get and nada, linhas
    for achado in (put, get, nada):
        assert int(achado.group(1)) in portas


# ------------------------------------------------------------ consistência


def test_replication_chega_a_todos_antes_do_put_ok(cluster, cliente):
    """[5e] Quando o PUT_OK chega, todos os seguidores já têm o valor, também o lento (GET
    direto neles), pelo líder ou por qualquer seguidor."""
    _, portas = cluster.tres(atraso=LENTO)
    cliente.inicializar(enderecos(portas))
    for i, porta_do_put in enumerate(portas):
        resposta, _ = cliente.put("k", "v%d" % i, servidor=("127.0.0.1", porta_do_put))
        assert resposta.tipo == Mensagem.PUT_OK
        # O lento primeiro: é nele que um PUT_OK adiantado apareceria.
        for porta in reversed(portas):
            assert get_direto(porta, "k", resposta.timestamp) == \
                {"tipo": "GET_OK", "key": "k", "value": "v%d" % i,
                 "timestamp": resposta.timestamp}, "PUT_OK antes de %d aplicar" % porta


def test_put_no_lider_grava_na_tabela_e_troca_value_e_ts_da_key(cluster):
    """[5c] O líder grava (key, value, ts) na tabela local; se a key já existe, troca o value
    e o timestamp (GET direto nele)."""
    lider = cluster.lider()
    for ts, valor in ((1, "v1"), (2, "v2")):
        assert trocar(lider.porta, {"tipo": "PUT", "key": "k", "value": valor})["timestamp"] == ts
        assert get_direto(lider.porta, "k") == {"tipo": "GET_OK", "key": "k", "value": valor,
                                                "timestamp": ts}


def test_um_contador_global_para_todas_as_keys(cluster, cliente):
    """[5c] Timestamps vêm de um contador só: 1, 2, 3... em qualquer key e qualquer servidor."""
    _, portas = cluster.tres()
    cliente.inicializar(enderecos(portas))
    vistos = [cliente.put(key, "x")[0].timestamp for key in ["a", "b", "a", "c", "b", "d"]]
    assert vistos == [1, 2, 3, 4, 5, 6]
    assert cliente.timestamps == {"a": 3, "b": 5, "c": 4, "d": 6}


def test_regra_do_get(cluster, cliente):
    """[5f] GET: S < T dá TRY_OTHER com S; senão GET_OK com o valor (null se não existe) e S."""
    _, portas = cluster.tres()
    cliente.inicializar(enderecos(portas))
    cliente.put("k", "v1")
    cliente.put("k", "v2")
    for porta in portas:
        assert get_direto(porta, "k", 2) == \
            {"tipo": "GET_OK", "key": "k", "value": "v2", "timestamp": 2}
        assert get_direto(porta, "k", 0) == \
            {"tipo": "GET_OK", "key": "k", "value": "v2", "timestamp": 2}
        assert get_direto(porta, "k", 3) == \
            {"tipo": "TRY_OTHER_SERVER_OR_LATER", "key": "k", "timestamp": 2}
        assert get_direto(porta, "nova", 0) == \
            {"tipo": "GET_OK", "key": "nova", "value": None, "timestamp": 0}


def test_ordem_de_partida_livre(cluster, cliente):
    """[5a] Seguidores que sobem antes do líder tentam entrar calados e seguem a regra da 5f;
    quando o líder sobe, entram; um seguidor que sobe depois dos PUTs recebe tudo pela cópia
    do JOIN; nenhum console escreve fora da seção 6."""
    porta_lider = cluster.reservar()
    cedo = [cluster.seguidor(porta_lider) for _ in range(2)]
    for proc in cedo:
        # Com --detalhes, o seguidor diz (só em detalhe) que tentou e não alcançou o líder.
        esperar(lambda: DETALHE in proc.erro_inteiro(), motivo="%s tentar o líder" % proc.nome)
        assert proc.saida() == "" and proc.erro() == ""
    # Sem líder, a regra da seção 5f vale igual: NULL com ts 0 a quem nada viu, e TRY_OTHER a
    # quem já viu um ts maior que o daqui.
    assert get_direto(cedo[0].porta, "k", 0) == \
        {"tipo": "GET_OK", "key": "k", "value": None, "timestamp": 0}
    assert get_direto(cedo[0].porta, "k", 1) == \
        {"tipo": "TRY_OTHER_SERVER_OR_LATER", "key": "k", "timestamp": 0}
    lider = cluster.servidor(porta_lider)
    for proc in cedo:
        esperar_unido(lider, proc.porta)
    cliente.inicializar(enderecos([porta_lider] + [proc.porta for proc in cedo]))
    esperados = {}
    for i in range(12):
        resposta, _ = cliente.put("k%d" % (i % 5), "valor %d" % i)
        esperados["k%d" % (i % 5)] = ("valor %d" % i, resposta.timestamp)
    tarde = cluster.seguidor(porta_lider)
    esperar_unido(lider, tarde.porta)
    for proc in [lider, tarde] + cedo:
        assert estado(proc.porta, sorted(esperados)) == esperados, proc.nome
    # O de depois recebeu tudo pela cópia do JOIN_OK: nenhuma linha REPLICATION.
    assert not [linha for linha in tarde.linhas_agora() if linha.startswith("REPLICATION")]
    exigir_console_limpo(lider, tarde, *cedo)


def test_seguidor_lento_mostra_try_other_e_nunca_valor_velho(cluster):
    """[5f][4c] Com --atraso-replicacao, B recebe TRY_OTHER do seguidor lento de verdade e
    nunca um valor mais velho que um que já viu."""
    (_, _, lento), portas = cluster.tres(atraso=3)
    a = Cliente()
    b = Cliente()
    a.inicializar(enderecos(portas))
    b.inicializar(enderecos(portas))
    a.put("k", "v1")
    esperar(lambda: b.get("k", servidor=("127.0.0.1", portas[2]))[0].tipo == Mensagem.GET_OK,
            motivo="seguidor lento aplicar v1")
    # A faz o PUT de v2 numa thread (ele espera o seguidor lento); B lê enquanto isso.
    feito = []
    escritor = threading.Thread(target=lambda: feito.append(a.put("k", "v2")[0]))
    escritor.start()
    respostas = []
    try:
        def b_viu_try_other():
            resposta, servidor = b.get("k")
            respostas.append((resposta.tipo, resposta.value, resposta.timestamp, servidor[1]))
            return resposta.tipo == Mensagem.TRY_OTHER_SERVER_OR_LATER
        esperar(b_viu_try_other, motivo="B ver TRY_OTHER_SERVER_OR_LATER")
    finally:
        escritor.join(PRAZO)
    assert feito and feito[0].tipo == Mensagem.PUT_OK and feito[0].timestamp == 2
    tipo, _, ts, porta = respostas[-1]
    assert (tipo, ts, porta) == (Mensagem.TRY_OTHER_SERVER_OR_LATER, 1, portas[2])
    # Antes do TRY_OTHER, B leu v2 (ts 2) de um servidor rápido: o lento não pode dar v1.
    assert ("GET_OK", "v2", 2) in [r[:3] for r in respostas]
    # Cada GET_OK traz o valor escrito no seu ts, e o ts visto por B nunca desce.
    lidos = [r[1:3] for r in respostas if r[0] == Mensagem.GET_OK]
    assert set(lidos) <= {("v1", 1), ("v2", 2)}
    assert [ts for _, ts in lidos] == sorted(ts for _, ts in lidos)
    assert b.timestamps["k"] == 2
    a.fechar()
    b.fechar()


def test_cliente_sorteia_o_servidor_de_cada_pedido(cluster, cliente):
    """[4b][4c] Cada PUT e cada GET vai a um servidor sorteado: em 60 de cada, os três aparecem
    (a chance de um faltar num sorteio justo é de 3 x (2/3)^60, menos de 1 em 10^10)."""
    _, portas = cluster.tres()
    cliente.inicializar(enderecos(portas))
    puts = {cliente.put("k%d" % i, "v")[1][1] for i in range(60)}
    gets = {cliente.get("k%d" % i)[1][1] for i in range(60)}
    assert puts == set(portas) and gets == set(portas), (puts, gets)


# ------------------------------------------------------------- o menu


def test_menu_opcao_errada_put_antes_do_init_e_key_vazia(cluster):
    """[4a] Menu: opção desconhecida, PUT/GET antes do INIT e key vazia: uma linha cada, segue."""
    proc = cluster.cliente("LIST\nPUT\nget\n" + init_digitado([cluster.porta_morta()] * 3) +
                           "PUT\n\n")
    assert proc.fim(erros=["Opção inválida: digite INIT, PUT ou GET.",
                           "Faça INIT antes de PUT.",
                           "Faça INIT antes de GET.",
                           "A key não pode ser vazia."]) == []


def test_menu_nenhum_servidor_responde(cluster):
    """[4b] Sem servidor no ar: uma linha curta e o menu continua (o GET seguinte também)."""
    proc = cluster.cliente(init_digitado([cluster.porta_morta()] * 3) + "PUT\nk\nv\nGET\nk\n")
    assert proc.fim(erros=["Nenhum servidor respondeu; o PUT não foi feito.",
                           "Nenhum servidor respondeu ao GET."]) == []


@pytest.mark.parametrize("entrada, erros", [("", []), ("INIT\n", []), ("INIT\n\n", []),
                                            ("PUT", ["Faça INIT antes de PUT."])])
def test_menu_fim_da_entrada_encerra_limpo(cluster, entrada, erros):
    """[4a] Fim da entrada (EOF) no meio de qualquer pergunta encerra com código 0."""
    assert cluster.cliente(entrada).fim(erros=erros) == []


def test_menu_init_com_padroes(monkeypatch):
    """[4a] INIT com Enter em tudo: 127.0.0.1 e portas 10097, 10098, 10099."""
    respostas = iter(["INIT"] + [""] * 6)

    def entrada(pergunta=""):
        try:
            return next(respostas)
        except StopIteration:
            raise EOFError
    monkeypatch.setattr("builtins.input", entrada)
    cliente = Cliente()
    with pytest.raises(EOFError):
        cliente.menu()
    assert cliente.servidores == [("127.0.0.1", 10097), ("127.0.0.1", 10098),
                                  ("127.0.0.1", 10099)]


def test_menu_ip_invalido_no_init_e_perguntado_de_novo(cluster):
    """[4a] INIT: um IP que não resolve é dito numa linha e perguntado de novo, como o
    servidor faz com o dele; o GET depois vai a um servidor de verdade."""
    _, portas = cluster.tres()
    entrada = "INIT\nip.que.nao.existe.invalid\n300.1.2.3\n\n%d\n\n%d\n\n%d\nGET\nk\n" \
        % tuple(portas)
    linhas = cluster.cliente(entrada).fim(erros=[
        "IP inválido: ip.que.nao.existe.invalid não é um endereço conhecido.",
        "IP inválido: 300.1.2.3 não é um endereço conhecido."])
    assert len(linhas) == 1 and linhas[0].startswith("GET key: k value: NULL"), linhas


def parado_no_teclado(pid):
    """O processo (uma thread só, antes do menu e das perguntas) dorme num read: estado S."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "S"
    except OSError:
        return True   # sem /proc: segue


@so_posix
@pytest.mark.parametrize("tecla", ["ctrl_d", "ctrl_c"])
@pytest.mark.parametrize("programa, pergunta", [("Cliente.py", "INIT, PUT ou GET? "),
                                                ("Servidor.py", "IP [127.0.0.1]: ")])
def test_ctrl_d_ou_ctrl_c_numa_pergunta_termina_a_linha(programa, pergunta, tecla):
    """[4a][5a] Ctrl+D ou Ctrl+C numa pergunta, num terminal: o programa sai limpo (código 0)
    e termina a linha, e o prompt do shell não fica colado na pergunta."""
    import pty
    mestre, escravo = pty.openpty()
    proc = subprocess.Popen([sys.executable, programa], cwd=RAIZ, stdin=escravo,
                            stdout=escravo, stderr=escravo, env=AMBIENTE_FILHO)
    os.close(escravo)
    saida = bytearray()

    def ler():
        while select.select([mestre], [], [], 0)[0]:
            try:
                dados = os.read(mestre, 4096)
            except OSError:   # o filho saiu e fechou o terminal (EIO no Linux)
                return False
            if not dados:
                return False
            saida.extend(dados)
        return True
    try:
        esperar(lambda: not ler() or pergunta.encode() in saida, motivo="a pergunta")
        # Uma pessoa aperta Ctrl+C com o programa já parado na leitura do teclado; um SIGINT
        # entre a pergunta aparecer e o read() começar se perderia (o read não é interrompido).
        esperar(lambda: parado_no_teclado(proc.pid), motivo="o programa ler o teclado")
        if tecla == "ctrl_d":
            os.write(mestre, b"\x04")   # no começo da linha, o terminal entrega fim da entrada
        else:
            proc.send_signal(signal.SIGINT)
        assert proc.wait(PRAZO) == 0
        esperar(lambda: not ler(), motivo="o fim da saída")
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(mestre)
    # A saída inteira (stdout e stderr, no mesmo terminal): a pergunta e o fim da linha.
    assert bytes(saida).endswith(pergunta.encode() + b"\r\n"), bytes(saida)


def test_menu_porta_invalida_no_init_e_perguntada_de_novo(cluster):
    """[4a] INIT: porta inválida é dita numa linha e perguntada de novo."""
    _, portas = cluster.tres()
    entrada = "INIT\n\nabc\n%d\n\n%d\n\n99999\n%d\nGET\nk\n" % tuple(portas)
    linhas = cluster.cliente(entrada).fim(
        erros=["Porta inválida: use um número de 1 a 65535."] * 2)
    assert len(linhas) == 1 and linhas[0].startswith("GET key: k value: NULL"), linhas


# ------------------------------------------------------ a biblioteca (SPEC 7)


def test_biblioteca_put_get_e_timestamps(cluster, cliente):
    """[4b][4c] API: put/get devolvem (Mensagem, servidor); timestamps por key só sobem, e o
    GET leva ao servidor o último que o cliente viu da key."""
    (_, _, seg2), portas = cluster.tres()
    cliente.inicializar(enderecos(portas))
    resposta, servidor = cliente.put("k", "v")
    assert resposta.tipo == Mensagem.PUT_OK and servidor in enderecos(portas)
    assert cliente.timestamps["k"] == 1
    resposta, servidor = cliente.get("k", servidor=("127.0.0.1", portas[2]))
    assert (resposta.tipo, resposta.value, servidor) == \
        (Mensagem.GET_OK, "v", ("127.0.0.1", portas[2]))
    cliente.put("outra", "x")
    assert cliente.timestamps == {"k": 1, "outra": 2}
    cliente.get("outra", servidor=("127.0.0.1", portas[2]))
    # O ts de cada key, o que o cliente viu dela, foi no GET (a linha do servidor o mostra).
    assert [re.sub(r"Cliente \S+ ", "", linha) for linha in seg2.linhas_agora()
            if " GET " in linha] == [
        "GET key:k ts:1. Meu ts é 1, portanto devolvendo v",
        "GET key:outra ts:2. Meu ts é 2, portanto devolvendo x"]
    resposta, _ = cliente.get("k")
    assert resposta.timestamp == 1 and cliente.timestamps["k"] == 1
    # Valor vazio e valor com quebra de linha e acentos vão e voltam iguais.
    for valor in ["", "linha 1\nlinha 2", "ação 日本 🚀"]:
        cliente.put("t", valor)
        assert cliente.get("t")[0].value == valor


def test_biblioteca_pula_servidor_fora_do_ar(cluster, cliente):
    """[4b][4c] Servidor que não responde é pulado; erro só se nenhum responde."""
    lider = cluster.lider()
    morto = cluster.porta_morta()
    cliente.inicializar(enderecos([morto, lider.porta]))
    for _ in range(10):
        resposta, servidor = cliente.put("k", "v")
        assert resposta.tipo == Mensagem.PUT_OK and servidor == ("127.0.0.1", lider.porta)
    cliente.inicializar(enderecos([morto]))
    with pytest.raises(ConnectionError):
        cliente.get("k")
    with pytest.raises(ValueError):
        cliente.put("", "v")


def test_biblioteca_reconecta_quando_o_servidor_reinicia(cluster, cliente):
    """[4c] Conexão persistente: se o servidor reinicia, o cliente reabre sem erro."""
    lider = cluster.lider()
    cliente.inicializar(enderecos([lider.porta]))
    cliente.put("k", "v")
    lider.terminar()
    cluster.servidor(lider.porta)
    resposta, _ = cliente.put("k", "v2")
    assert resposta.tipo == Mensagem.PUT_OK


# ----------------------------------------------- quem pode replicar (SPEC 4)


def test_replication_e_join_ok_de_fora_do_canal_recebem_erro(cluster):
    """[5d] REPLICATION e JOIN_OK na porta de escuta de qualquer servidor (numa conexão de
    cliente comum): ERRO; nenhuma tabela muda, nada é impresso, o contador não anda."""
    procs, portas = cluster.tres()
    assert trocar(portas[0], {"tipo": "PUT", "key": "k", "value": "certo"})["timestamp"] == 1
    keys = ["k", "nunca"]
    antes = {"k": ("certo", 1), "nunca": (None, 0)}
    falsas = [
        {"tipo": "REPLICATION", "key": "k", "value": "falso", "timestamp": 1000},
        {"tipo": "REPLICATION", "key": "nunca", "value": "falso", "timestamp": 1},
        {"tipo": "JOIN_OK", "timestamp": 1000, "dados": {"k": ["falso", 1000],
                                                         "nunca": ["falso", 1]}},
        {"tipo": "JOIN_OK", "dados": {}, "timestamp": 0},   # apagaria a tabela
    ]
    for proc in procs:
        proc.marcar()
    for porta in portas:
        with socket.create_connection(("127.0.0.1", porta), timeout=PRAZO) as sock, \
                sock.makefile("rb") as arquivo:
            for falsa in [{"tipo": "GET", "key": "k", "timestamp": 0}] + falsas:
                sock.sendall(linha_json(falsa))
                resposta = Mensagem.de_linha(arquivo.readline())
                esperado = Mensagem.GET_OK if falsa["tipo"] == "GET" else Mensagem.ERRO
                assert resposta.tipo == esperado, (porta, falsa, resposta)
    for proc in procs:
        assert [linha for linha in proc.linhas_agora() if " GET " not in linha] == [], proc.nome
        assert estado(proc.porta, keys) == antes, proc.nome
    assert trocar(portas[0], {"tipo": "PUT", "key": "k", "value": "de novo"})["timestamp"] == 2
    exigir_console_limpo(*procs)


def test_join_em_seguidor_e_recusado(cluster):
    """[5a] JOIN mandado a um seguidor recebe ERRO dizendo quem é o líder."""
    _, portas = cluster.tres()
    resposta = trocar(portas[1], {"tipo": "JOIN", "origem": "127.0.0.1:1"})
    assert resposta == {"tipo": "ERRO",
                        "value": "este servidor é seguidor; o líder é 127.0.0.1:%d" % portas[0]}


# ---------------------------------------------------- linha de comando


def test_servidor_pergunta_com_padroes_e_repete_resposta_invalida(cluster):
    """[5a] Sem argumentos, o servidor pergunta; Enter aceita o padrão, porta inválida ou em
    uso é dita numa linha e perguntada de novo na hora (antes das perguntas do líder)."""
    with socket.create_server(("127.0.0.1", 0)) as ocupada:
        em_uso = ocupada.getsockname()[1]
        porta = cluster.reservar()
        # IP (Enter), porta inválida, porta em uso, porta livre; líder: Enter e a porta livre.
        entrada = "\nabc\n%d\n%d\n\n%d\n" % (em_uso, porta, porta)
        proc = cluster.iniciar(["Servidor.py"], "interativo", porta, entrada=entrada)
    # A porta abre antes das perguntas do líder; um PUT só é atendido depois de todas.
    assert trocar(porta, {"tipo": "PUT", "key": "k", "value": "v"})["timestamp"] == 1
    assert proc.erro().splitlines() == [
        "Porta inválida: use um número de 1 a 65535.",
        "Não foi possível abrir 127.0.0.1:%d: porta em uso." % em_uso]
    # A ordem das perguntas: três vezes a porta, e só então o líder, uma vez.
    assert proc.saida().startswith("IP [127.0.0.1]: " + "Porta [10097]: " * 3
                                   + "IP do líder [127.0.0.1]: Porta do líder [10097]: ")


@pytest.mark.parametrize("args, mensagem", [
    (["127.0.0.1", "abc", "127.0.0.1", "1"], "Porta inválida: use um número de 1 a 65535."),
    (["127.0.0.1", "1"], "Informe os quatro valores"),
    (["--atraso-replicacao", "-3"], "Atraso inválido: use segundos de 0 a 30."),
    (["--atraso-replicacao", "31"], "Atraso inválido: use segundos de 0 a 30."),
    (["--fsync"], "--fsync só vale com --dados PASTA."),
    (["--prazo-replicacao", "0"], "Prazo de replicação inválido: use segundos de 1 a 600."),
    (["127.0.0.1", "²", "127.0.0.1", "1"], "Porta inválida: use um número de 1 a 65535."),
    (["--depressa"], "Opção desconhecida: --depressa"),
])
def test_servidor_argumentos_invalidos_saem_com_codigo_2(tmp_path, args, mensagem):
    """[5a] Argumentos inválidos: uma linha clara e código de saída 2."""
    proc = Processo(["Servidor.py"] + args, str(tmp_path), "args")
    proc.esperar_fim(codigo=2)
    assert proc.erro().startswith(mensagem)
    assert "Traceback" not in proc.erro()


def test_servidor_porta_em_uso_sai_com_codigo_2(tmp_path):
    """[5a] Com argumentos, porta em uso: uma linha e código 2."""
    with socket.create_server(("127.0.0.1", 0)) as ocupada:
        porta = ocupada.getsockname()[1]
        proc = Processo(["Servidor.py", "127.0.0.1", str(porta), "127.0.0.1", str(porta)],
                        str(tmp_path), "em-uso")
        proc.fim(erros=["Não foi possível abrir 127.0.0.1:%d: porta em uso." % porta], codigo=2)
