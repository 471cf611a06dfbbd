"""Nada confirmado se perde: o líder que reinicia volta com todos os dados (dos seguidores, ou
do registro em disco com --dados), o contador nunca volta, e nenhum seguidor é esvaziado.

Os testes lentos têm logo acima um comentário "# Lento (~N s): por quê".
"""

import json
import os
import shutil
import signal
import socket
import threading
import time

import pytest

from conftest import (PRAZO, SeguidorFalso, enderecos, esperar, esperar_unido, get_direto,
                      join_falso, lider_em_memoria, linha_json, so_posix, trocar)
from Cliente import Cliente
from Mensagem import Mensagem
from Servidor import Servidor

ESCRITORES = 8
# O prazo de replicação do teste da regra de dois seguidores vazios: um PUT que esperasse o
# JOIN que segue chegando levaria isto; o PUT certo leva ~1 s (dois seguidores subindo).
PRAZO_DA_HISTORIA = 30


def exigir_tudo_em_todos(portas, confirmados):
    """Cada PUT confirmado (key -> value, ts) é lido de cada servidor com o mesmo value e um ts
    igual ou maior (uma fusão refaz as escritas do líder novo acima do contador do seguidor),
    e todos os servidores respondem igual. Espera os seguidores que refazem o JOIN."""
    def iguais():
        return all(len({json.dumps(get_direto(p, key)) for p in portas}) == 1 for key in confirmados)
    esperar(iguais, motivo="os servidores terem a mesma tabela")
    for key, (value, ts) in confirmados.items():
        resposta = get_direto(portas[0], key)
        assert (resposta["tipo"], resposta["value"]) == ("GET_OK", value), (key, resposta)
        assert resposta["timestamp"] >= ts, (key, ts, resposta)


def tabela_do_lider(porta):
    """A tabela inteira do líder, pelo snapshot que ele manda a um JOIN (que não confirma e
    não traz nada: o líder não funde nada e não o põe no conjunto)."""
    resposta = join_falso(porta)
    assert resposta["tipo"] == "JOIN_OK", resposta
    return {key: tuple(entrada) for key, entrada in resposta["dados"].items()}, \
        resposta["timestamp"]


def pasta_com_tabela(tmp_path, tabela, contador):
    """Uma pasta de --dados com este snapshot (key -> (value, ts)): o líder sobe com ela."""
    pasta = tmp_path / "dados"
    pasta.mkdir()
    dados = {key: [value, ts] for key, (value, ts) in tabela.items()}
    (pasta / "snapshot").write_bytes(
        Mensagem(Mensagem.JOIN_OK, dados=dados, timestamp=contador).para_linha())
    return str(pasta)


class Escritores:
    """8 clientes escrevendo keys únicas ao acaso nos três servidores; guarda o histórico."""

    def __init__(self, portas):
        self.portas = portas
        self.parar = threading.Event()
        self.confirmados = {}     # key -> (value, ts) de cada PUT_OK
        self.instantes = {}       # key -> (envio, PUT_OK) em time.monotonic()
        self.falhas = 0           # PUTs sem resposta ou com ERRO (o líder fora do ar)
        self.trava = threading.Lock()
        self.clientes = [Cliente(prazo_put=PRAZO) for _ in range(ESCRITORES)]
        self.threads = [threading.Thread(target=self.escrever, args=(n,), daemon=True)
                        for n in range(ESCRITORES)]
        for thread in self.threads:
            thread.start()

    def escrever(self, n):
        cliente = self.clientes[n]
        cliente.inicializar(enderecos(self.portas))
        i = 0
        while not self.parar.is_set():
            i += 1
            key, value = "c%d-%d" % (n, i), "valor %d de %d" % (i, n)
            enviado = time.monotonic()
            try:
                resposta, _ = cliente.put(key, value)
            except ConnectionError:
                resposta = None
            with self.trava:
                if resposta is not None and resposta.tipo == Mensagem.PUT_OK:
                    self.confirmados[key] = (value, resposta.timestamp)
                    self.instantes[key] = (enviado, time.monotonic())
                else:
                    self.falhas += 1
            # A key fixa do cliente: lida de volta, ela mostra se o cliente ficou preso.
            try:
                cliente.put("fixa-%d" % n, value)
            except ConnectionError:
                pass

    def quantos(self):
        with self.trava:
            return len(self.confirmados)

    def terminar(self):
        self.parar.set()
        for thread in self.threads:
            thread.join(2 * PRAZO)
        with self.trava:
            return dict(self.confirmados)


# Lento (~3 s): escrita contínua antes e depois do reinício.
@pytest.mark.parametrize("como", [pytest.param("ctrl_c", marks=so_posix), "kill_9"])
def test_lider_reiniciado_sob_carga_nao_perde_nada(cluster, como):
    """[5c][5e][5f] Ctrl+C ou kill -9 no líder com 8 clientes escrevendo; ele volta sem opção
    nenhuma: todo PUT confirmado está em todos, todo PUT_OK do líder novo tem ts acima de tudo
    o que foi confirmado antes, e nenhum cliente fica preso."""
    (lider, _, _), portas = cluster.tres()
    escritores = Escritores(portas)
    esperar(lambda: escritores.quantos() >= 200, motivo="200 PUTs antes da queda")
    if como == "ctrl_c":
        lider.interromper()
        lider.popen.wait(PRAZO)
    else:
        lider.matar()
    # Um PUT_OK recebido antes de o líder novo subir é do antigo; um PUT enviado depois que
    # o antigo morreu só pode ter o PUT_OK do novo.
    antes = escritores.quantos()
    subida = time.monotonic()
    novo = cluster.servidor(portas[0], portas[0])
    esperar(lambda: escritores.quantos() >= antes + 200, motivo="200 PUTs depois da volta")
    confirmados = escritores.terminar()
    instantes = dict(escritores.instantes)
    maior_antes = max(ts for key, (_, ts) in confirmados.items() if instantes[key][1] < subida)
    depois = sorted(ts for key, (_, ts) in confirmados.items() if instantes[key][0] > subida)
    assert depois and depois[0] > maior_antes, (maior_antes, depois[:10])
    # Unidos ao líder novo, os seguidores já foram fundidos: o contador passou o de antes.
    for porta in portas[1:]:
        esperar_unido(novo, porta)
    exigir_tudo_em_todos(portas, confirmados)
    # Nenhum cliente preso: cada um escreve a sua key fixa e a lê de volta de todo servidor.
    for n, cliente in enumerate(escritores.clientes):
        resposta, _ = cliente.put("fixa-%d" % n, "final")
        assert resposta.tipo == Mensagem.PUT_OK and resposta.timestamp > maior_antes
        for porta in portas:
            lido, _ = cliente.get("fixa-%d" % n, servidor=("127.0.0.1", porta))
            assert (lido.tipo, lido.value) == (Mensagem.GET_OK, "final"), (n, porta, lido)
        cliente.fechar()


# Lento (~2 s): dois cenários de reinício completo.
@pytest.mark.parametrize("ordem", ["lider_primeiro", "seguidores_primeiro"])
def test_dados_kill_9_nos_tres_e_volta_em_qualquer_ordem(cluster, tmp_path, ordem):
    """[5c] Com --dados, kill -9 nos três ao mesmo tempo: voltando em qualquer ordem, nada
    confirmado se perde e o ts continua de onde parou."""
    pasta = str(tmp_path / "dados")
    procs = [cluster.lider("--dados", pasta)]
    procs += [cluster.seguidor(procs[0].porta) for _ in range(2)]
    portas = [proc.porta for proc in procs]
    for porta in portas[1:]:
        esperar_unido(procs[0], porta)
    cliente = Cliente()
    cliente.inicializar(enderecos(portas))
    confirmados = {}
    for i in range(60):
        resposta, _ = cliente.put("k%d" % i, "v%d" % i)
        confirmados["k%d" % i] = ("v%d" % i, resposta.timestamp)
    cliente.fechar()
    for proc in procs:
        proc.popen.kill()
    for proc in procs:
        proc.matar()   # já morto: espera e prende a porta até a volta
    if ordem == "lider_primeiro":
        lider = cluster.servidor(portas[0], None, "--dados", pasta)
    for porta in portas[1:]:
        cluster.servidor(porta, portas[0])
    if ordem == "seguidores_primeiro":
        lider = cluster.servidor(portas[0], None, "--dados", pasta)
    for porta in portas[1:]:
        esperar_unido(lider, porta)
    exigir_tudo_em_todos(portas, confirmados)
    assert trocar(portas[1], {"tipo": "PUT", "key": "k", "value": "v"})["timestamp"] == 61


def registro_com_puts(cluster, tmp_path, quantos):
    """Sobe um líder com --dados, grava quantos PUTs e o mata (kill -9); devolve a pasta."""
    pasta = str(tmp_path / "dados")
    lider = cluster.lider("--dados", pasta)
    for i in range(quantos):
        assert trocar(lider.porta, {"tipo": "PUT", "key": "k%d" % (i % 7),
                                    "value": "v%d" % i})["timestamp"] == i + 1
    lider.matar()
    return pasta


def registro_escrito(tmp_path, quantos):
    """Uma pasta de --dados como a que o líder deixa depois de quantos PUTs e um kill -9:
    snapshot vazio e uma linha REPLICATION por PUT. Devolve a pasta."""
    pasta = tmp_path / "dados"
    pasta.mkdir()
    (pasta / "snapshot").write_bytes(Mensagem(Mensagem.JOIN_OK, dados={}, timestamp=0)
                                     .para_linha())
    (pasta / "registro").write_bytes(b"".join(
        Mensagem(Mensagem.REPLICATION, key="k%d" % (i % 7), value="v%d" % i,
                 timestamp=i + 1).para_linha() for i in range(quantos)))
    return str(pasta)


def test_ultima_linha_cortada_e_descartada_com_um_aviso(cluster, tmp_path):
    """[5c] Uma queda no meio da gravação deixa a última linha pela metade: ela é descartada
    com uma linha em stderr, e o resto volta inteiro."""
    pasta = registro_escrito(tmp_path, 10)
    with open(os.path.join(pasta, "registro"), "ab") as registro:
        registro.write(b'{"tipo":"REPLICATION","key":"k0","value":"meia')
    lider = cluster.lider("--dados", pasta)
    porta = lider.porta
    assert get_direto(porta, "k2") == {"tipo": "GET_OK", "key": "k2", "value": "v9",
                                       "timestamp": 10}
    assert trocar(porta, {"tipo": "PUT", "key": "n", "value": "v"})["timestamp"] == 11
    lider.sincronizar()   # o aviso veio antes desta linha, pela mesma fila do console
    erros = lider.erro().splitlines()
    assert len(erros) == 1 and "última linha cortada" in erros[0], erros


@pytest.mark.parametrize("estrago", ["linha_do_meio", "tipo_errado", "snapshot"])
def test_registro_danificado_para_o_servidor_com_mensagem_clara(cluster, tmp_path, estrago):
    """[5c] Dano que não é a última linha cortada: o servidor não sobe (código 2), diz o
    arquivo e a linha, e não apaga nada."""
    pasta = registro_escrito(tmp_path, 10)
    caminho = os.path.join(pasta, "snapshot" if estrago == "snapshot" else "registro")
    with open(caminho, "rb") as arquivo:
        linhas = arquivo.read().splitlines(keepends=True)
    if estrago == "linha_do_meio":
        linhas[len(linhas) // 2] = b"lixo que nao e JSON\n"
    elif estrago == "tipo_errado":
        linhas[2] = b'{"tipo":"GET","key":"k","timestamp":0}\n'
    else:
        linhas = [b'{"tipo":"JOIN_OK","dados":{"k":"quebrado"},"timestamp":3}\n']
    with open(caminho, "wb") as arquivo:
        arquivo.write(b"".join(linhas))
    lider = cluster.lider("--dados", pasta, esperar_porta=False)
    lider.esperar_fim(codigo=2)
    erro = lider.erro()
    assert erro.startswith("Registro em disco danificado: %s" % caminho), erro
    assert "Traceback" not in erro and len(erro.splitlines()) == 1
    with open(caminho, "rb") as arquivo:
        assert arquivo.read() == b"".join(linhas), "o arquivo danificado foi mexido"


def test_registro_e_compactado_e_volta_igual(cluster, tmp_path):
    """[5c] O registro vira snapshot quando cresce além de um múltiplo da tabela; a volta
    depois de um kill -9 traz tudo."""
    pasta = registro_com_puts(cluster, tmp_path, 1200)
    with open(os.path.join(pasta, "registro"), "rb") as registro:
        assert len(registro.read().splitlines()) < 1200, "o registro não foi compactado"
    porta = cluster.lider("--dados", pasta).porta
    for i in range(1193, 1200):
        assert get_direto(porta, "k%d" % (i % 7)) == {"tipo": "GET_OK", "key": "k%d" % (i % 7),
                                                     "value": "v%d" % i, "timestamp": i + 1}
    assert trocar(porta, {"tipo": "PUT", "key": "n", "value": "v"})["timestamp"] == 1201


# ------------------------------------------------ fusão: nada depende de relógio


def lider_novo_com_um_put_na_hora(cluster, porta, *extras):
    """Sobe o líder de novo e manda um PUT assim que a porta abre (antes de qualquer JOIN)."""
    lider = cluster.servidor(porta, porta, *extras)
    resposta = trocar(porta, {"tipo": "PUT", "key": "depois", "value": "do reinício"})
    assert resposta["tipo"] == "PUT_OK", resposta
    return lider, resposta["timestamp"]


def exigir_cluster_inteiro(portas, lider, esperado, contador_antes):
    """Depois da fusão: a tabela do líder tem tudo o que foi confirmado, os seguidores têm
    a mesma, o contador não voltou, e um cliente que viu o maior ts escreve e lê a sua key."""
    for porta in portas[1:]:
        esperar_unido(lider, porta)
    tabela, contador = tabela_do_lider(portas[0])
    for key, (value, ts) in esperado.items():
        assert tabela.get(key, (None, 0))[0] == value and tabela[key][1] >= ts, key
    assert contador >= contador_antes
    amostra = sorted(esperado)[::max(1, len(esperado) // 50)] + ["depois"]
    exigir_tudo_em_todos(portas, {key: tabela[key] for key in amostra})
    cliente = Cliente()
    cliente.inicializar(enderecos(portas))
    cliente.timestamps["depois"] = contador   # um cliente que viu o maior ts
    resposta, _ = cliente.put("depois", "de novo")
    assert resposta.tipo == Mensagem.PUT_OK and resposta.timestamp > contador
    for porta in portas:
        lido, _ = cliente.get("depois", servidor=("127.0.0.1", porta))
        assert (lido.tipo, lido.value) == (Mensagem.GET_OK, "de novo"), (porta, lido)
    cliente.fechar()


# Tabelas grandes para o JOIN: muitas keys, e mais bytes que os 16 MiB de um pedido de cliente.
TABELAS = {
    "150_000_keys": lambda: {"k%06d" % i: ("valor %d" % i, i + 1) for i in range(150000)},
    "36_MiB": lambda: {"grande%d" % i: (chr(ord("a") + i) * (3 * 1024 * 1024), i + 1)
                       for i in range(12)},
}


# Lento (~5 s): a tabela inteira vai e volta no JOIN.
@pytest.mark.parametrize("nome", sorted(TABELAS))
def test_tabela_grande_volta_ao_lider_que_aceitou_put_antes_dos_joins(cluster, tmp_path, nome):
    """[5a][5c] Seguidores com uma tabela grande (150 000 keys, ou 36 MiB); o líder reinicia
    vazio e aceita um PUT antes de ler qualquer JOIN: ao chegarem, ele funde, e nada
    confirmado se perde (o limite de 16 MiB é só para pedidos de clientes)."""
    tabela = TABELAS[nome]()
    contador = len(tabela)
    lider = cluster.lider("--dados", pasta_com_tabela(tmp_path, tabela, contador))
    portas = [lider.porta]
    for _ in range(2):
        portas.append(cluster.seguidor(lider.porta).porta)
        esperar_unido(lider, portas[-1])
    lider.matar()
    lider, ts = lider_novo_com_um_put_na_hora(cluster, portas[0])
    tabela["depois"] = ("do reinício", ts)
    exigir_cluster_inteiro(portas, lider, tabela, contador)


@pytest.mark.parametrize("como", ["atraso", pytest.param("pausa", marks=so_posix)])
def test_seguidor_dormindo_quando_o_lider_reinicia_traz_tudo_de_volta(cluster, como):
    """[5c][5d] O único seguidor está dormindo (no --atraso-replicacao, ou pausado) quando o
    líder reinicia; o líder novo aceita um PUT; o seguidor volta e nada confirmado se perde."""
    lider = cluster.lider()
    extras = ("--atraso-replicacao", "1") if como == "atraso" else ()
    seguidor = cluster.seguidor(lider.porta, *extras)
    portas = [lider.porta, seguidor.porta]
    esperar_unido(lider, portas[1])
    confirmados = {}
    for i in range(3):
        resposta = trocar(portas[0], {"tipo": "PUT", "key": "a%d" % i, "value": str(i)})
        confirmados["a%d" % i] = (str(i), resposta["timestamp"])
    if como == "atraso":
        # Um PUT que o seguidor recebe e aplica dormindo: o líder morre antes do PUT_OK.
        threading.Thread(target=trocar, args=(portas[0], {"tipo": "PUT", "key": "b",
                                                          "value": "talvez"}), daemon=True).start()
        esperar(lambda: any(" PUT key:b " in l for l in lider.linhas_agora()),
                motivo="o líder receber o PUT")
    else:
        seguidor.popen.send_signal(signal.SIGSTOP)
    try:
        lider.matar()
        lider, ts = lider_novo_com_um_put_na_hora(cluster, portas[0])
    finally:
        seguidor.popen.send_signal(signal.SIGCONT)
    confirmados["depois"] = ("do reinício", ts)
    exigir_cluster_inteiro(portas, lider, confirmados, 3)


def test_pasta_de_dados_velha_com_seguidores_adiantados_nao_perde_nada(cluster, tmp_path):
    """[5c] O líder volta de uma cópia velha do --dados (queda sem --fsync, backup) e os
    seguidores estão adiantados: ele funde, e o que eles têm a mais não se perde."""
    pasta = str(tmp_path / "dados")
    lider = cluster.lider("--dados", pasta)
    portas = [lider.porta]
    for _ in range(2):
        portas.append(cluster.seguidor(lider.porta).porta)
        esperar_unido(lider, portas[-1])
    confirmados = {}
    for i in range(20):
        if i == 10:
            shutil.copytree(pasta, pasta + "-velha")
        resposta = trocar(portas[0], {"tipo": "PUT", "key": "k%d" % i, "value": "v%d" % i})
        confirmados["k%d" % i] = ("v%d" % i, resposta["timestamp"])
    lider.matar()
    shutil.rmtree(pasta)
    shutil.copytree(pasta + "-velha", pasta)
    lider = cluster.servidor(portas[0], None, "--dados", pasta)
    # A cópia velha vai até o ts 10; k15 está no ts 16 nos seguidores. O PUT de k15 feito
    # assim que a porta abre só recebe ts depois que o líder ouviu um seguidor: acima de 20,
    # e nenhum seguidor devolve o valor velho a quem o escreveu.
    cliente = Cliente()
    cliente.inicializar(enderecos(portas))
    resposta, _ = cliente.put("k15", "novo", servidor=("127.0.0.1", portas[0]))
    assert resposta.tipo == Mensagem.PUT_OK and resposta.timestamp > 20, resposta
    for porta in portas[1:]:
        lido, _ = cliente.get("k15", servidor=("127.0.0.1", porta))
        assert (lido.tipo, lido.value) != (Mensagem.GET_OK, "v15"), (porta, lido)
    cliente.fechar()
    confirmados["k15"] = ("novo", resposta.timestamp)
    confirmados["depois"] = ("do reinício", trocar(portas[0], {
        "tipo": "PUT", "key": "depois", "value": "do reinício"})["timestamp"])
    exigir_cluster_inteiro(portas, lider, confirmados, 20)


def test_join_que_mente_ou_nao_termina_nao_apaga_nada(cluster):
    """[5a] Um JOIN falso com contador enorme e tabela vazia não apaga nenhuma key (o
    contador só sobe), e um JOIN que nunca termina a linha não atrasa os outros pedidos."""
    (lider, _, _), portas = cluster.tres()
    for i in range(5):
        trocar(portas[0], {"tipo": "PUT", "key": "k%d" % i, "value": "v%d" % i})
    # Uma linha de JOIN sem fim (20 MiB e nada de \n): o líder segue servindo.
    meia = socket.create_connection(("127.0.0.1", portas[0]), timeout=PRAZO)
    meia.sendall(b'{"tipo":"JOIN","origem":"127.0.0.1:1","dados":{"x":["' + b"y" * (20 << 20))
    assert join_falso(portas[0], "127.0.0.1:2", 10 ** 6, {})["tipo"] == "JOIN_OK"
    resposta = trocar(portas[0], {"tipo": "PUT", "key": "k0", "value": "novo"})
    assert resposta["timestamp"] > 10 ** 6
    esperado = {"k%d" % i: ("v%d" % i, i + 1) for i in range(1, 5)}
    esperado["k0"] = ("novo", resposta["timestamp"])
    exigir_tudo_em_todos(portas, esperado)
    meia.close()


def test_escrita_do_lider_novo_sobe_acima_de_uma_versao_de_antes_com_ts_maior(cluster):
    """[5f] Dois seguidores voltam a um líder que reiniciou e aceitou k1 e k2: o primeiro (com
    contador 98) não tem k1 nem k2, e nada é refeito (o contador vai a 98); o segundo traz a
    k1 de antes em ts 100, que um cliente pode ter lido. A k1 do líder novo sobe acima dela:
    quem viu ts 100 lê a k1 nova, em vez de TRY_OTHER para sempre; k2 fica onde estava."""
    porta = cluster.lider().porta
    for key in ("k1", "k2"):
        assert trocar(porta, {"tipo": "PUT", "key": key, "value": "novo"})["tipo"] == "PUT_OK"
    falsos = [join_falso(porta, origem, timestamp, dados) for origem, timestamp, dados in (
        ("127.0.0.1:1", 98, {"m": ["de antes", 98]}),
        ("127.0.0.1:2", 100, {"k1": ["de antes", 100]}))]
    assert [f["tipo"] for f in falsos] == ["JOIN_OK", "JOIN_OK"]
    assert falsos[0]["dados"]["k1"] == ["novo", 1] and falsos[0]["timestamp"] == 98
    lido = get_direto(porta, "k1", 100)
    assert (lido["tipo"], lido["value"]) == ("GET_OK", "novo") and lido["timestamp"] > 100, lido
    assert get_direto(porta, "k2")["timestamp"] == 2
    assert get_direto(porta, "m", 98) == {"tipo": "GET_OK", "key": "m", "value": "de antes",
                                          "timestamp": 98}


# ------------------------------------- 5f através de um reinício: o líder ouve antes de gravar


def test_lider_reiniciado_nao_da_timestamp_antes_de_ouvir_um_seguidor(cluster):
    """[5f] k0..k19 = velho nos três; o líder cai (kill -9) e volta vazio; um cliente grava
    k0..k19 = novo nele assim que a porta abre e lê cada key dos seguidores com o ts do PUT_OK:
    nunca o valor velho, e todo PUT_OK tem ts acima de tudo o que foi confirmado antes."""
    (lider, _, _), portas = cluster.tres()
    antes = Cliente()
    antes.inicializar(enderecos(portas))
    maior_antes = max(antes.put("k%d" % i, "velho")[0].timestamp for i in range(20))
    antes.fechar()
    lider.matar()
    cluster.servidor(portas[0], portas[0])
    cliente = Cliente()
    cliente.inicializar(enderecos(portas))
    velhos = []
    for i in range(20):
        key = "k%d" % i
        resposta, _ = cliente.put(key, "novo", servidor=("127.0.0.1", portas[0]))
        assert resposta.tipo == Mensagem.PUT_OK and resposta.timestamp > maior_antes, resposta
        for porta in portas[1:]:
            lido, _ = cliente.get(key, servidor=("127.0.0.1", porta))
            if (lido.tipo, lido.value) == (Mensagem.GET_OK, "velho"):
                velhos.append((key, porta, lido.timestamp))
    cliente.fechar()
    assert velhos == [], "leituras mais velhas que o próprio PUT_OK: %s" % velhos[:5]


def test_lider_sozinho_grava_o_primeiro_put_depois_de_uma_espera_curta(cluster):
    """[5c] Um líder sem seguidor nenhum (ou com os seguidores ainda por subir) não espera
    para sempre pela história: o primeiro PUT, feito assim que a porta abre, recebe PUT_OK
    com ts 1 depois da espera curta do líder, e os GETs nunca esperam."""
    porta = cluster.lider().porta
    resultado = []
    thread = threading.Thread(target=lambda: resultado.append(
        trocar(porta, {"tipo": "PUT", "key": "k", "value": "v"})), daemon=True)
    thread.start()
    assert get_direto(porta, "k") == {"tipo": "GET_OK", "key": "k", "value": None, "timestamp": 0}
    thread.join(PRAZO)
    assert resultado == [{"tipo": "PUT_OK", "key": "k", "value": "v", "timestamp": 1}]


# Lento (~3 s): a espera do líder (3 s) passa com um JOIN chegando.
def test_join_que_esta_chegando_segura_o_primeiro_timestamp(cluster):
    """[5f] Um JOIN com história (contador 50) começa a chegar logo que o líder sobe e só
    termina depois da espera curta dele: o PUT feito nesse meio tempo recebe ts acima de 50."""
    lider = cluster.lider()
    with SeguidorFalso(lider.porta, "127.0.0.1:1", 50, {"m": ["antes", 50]},
                       em_partes=True) as chegando:
        # Um líder de controle, sem ninguém chegando, sobe depois deste: quando o primeiro PUT
        # dele é respondido, a espera curta deste também já passou (ela conta da subida).
        controle = cluster.lider()
        resultado = []
        thread = threading.Thread(target=lambda: resultado.append(
            trocar(lider.porta, {"tipo": "PUT", "key": "k", "value": "v"})), daemon=True)
        thread.start()
        esperar(lambda: "Cliente" in "".join(lider.linhas_agora()), motivo="o líder ler o PUT")
        assert trocar(controle.porta, {"tipo": "PUT", "key": "k", "value": "v"})["timestamp"] == 1
        assert resultado == [], "o PUT recebeu ts antes de o JOIN que chegava ser fundido"
        chegando.terminar_join()
        assert chegando.resposta()["tipo"] == "JOIN_OK"
    thread.join(PRAZO)
    assert resultado and resultado[0]["timestamp"] == 51, resultado


# Lento (~1 s a mais que um teste comum): seguidores sobem.
def test_dois_seguidores_vazios_bastam_como_historia(cluster):
    """[5f] Três servidores sem dados (o caso do enunciado): fundidos os JOINs dos dois
    seguidores vazios, o líder já ouviu a história toda; o primeiro PUT recebe ts 1 sem
    esperar mais nada, nem um terceiro JOIN que ainda está chegando (que de outro modo o
    seguraria até o prazo de replicação, aqui PRAZO_DA_HISTORIA)."""
    inicio = time.monotonic()
    lider = cluster.lider("--prazo-replicacao", str(PRAZO_DA_HISTORIA))
    parar = threading.Event()
    with SeguidorFalso(lider.porta, "127.0.0.1:1", em_partes=True) as chegando:
        def gotejar():
            # Um byte por segundo: a linha segue chegando (o líder só desiste de uma linha
            # parada), e o JOIN dela nunca termina.
            while not parar.wait(1.0):
                chegando.sock.sendall(b"y")
        gotejador = threading.Thread(target=gotejar, daemon=True)
        gotejador.start()
        try:
            for _ in range(2):
                esperar_unido(lider, cluster.seguidor(lider.porta).porta)
            resposta = trocar(lider.porta, {"tipo": "PUT", "key": "k", "value": "v"},
                              prazo=PRAZO_DA_HISTORIA + PRAZO)
        finally:
            parar.set()
            gotejador.join(PRAZO)
    assert (resposta["tipo"], resposta["timestamp"]) == ("PUT_OK", 1), resposta
    # Sem a regra, o PUT esperaria o prazo de replicação inteiro (PRAZO_DA_HISTORIA).
    assert time.monotonic() - inicio < PRAZO_DA_HISTORIA, "o líder esperou o JOIN que chegava"


# ------------------------------------------------ o registro em disco e a compactação


def test_compactacao_guarda_o_put_que_a_provocou(cluster, tmp_path):
    """[5c] Um líder com --dados grava uma key 1 003 vezes: o 1 003º PUT compacta o registro.
    Depois de um kill -9, ele volta com esse PUT (o que o PUT_OK disse), não com o anterior."""
    pasta = str(tmp_path / "dados")
    lider = cluster.lider("--dados", pasta)
    with socket.create_connection(("127.0.0.1", lider.porta), timeout=PRAZO) as sock:
        arquivo = sock.makefile("rb")
        for i in range(1003):
            sock.sendall(linha_json({"tipo": "PUT", "key": "k", "value": "v%d" % i}))
            assert json.loads(arquivo.readline())["timestamp"] == i + 1
    lider.matar()
    porta = cluster.lider("--dados", pasta).porta
    assert get_direto(porta, "k", 1003) == {"tipo": "GET_OK", "key": "k", "value": "v1002",
                                            "timestamp": 1003}


# --------------------------------------------------- JOINs que mentem custam no máximo um prazo


def test_join_no_limite_do_contador_nao_tranca_os_seguidores(cluster):
    """[5a] Um JOIN falso com o contador logo abaixo do limite é aceito; dois PUTs depois, os
    seguidores estão acima do limite. Um deles refaz o JOIN (o canal caiu): entra, porque o
    contador dele não passa o do líder. Um JOIN acima do limite e acima do líder é recusado."""
    (lider, _, seguidor), portas = cluster.tres()
    limite = Servidor.MAIOR_CONTADOR_JOIN
    assert join_falso(portas[0], "127.0.0.1:1", limite - 1, {})["tipo"] == "JOIN_OK"
    for i in range(2):
        assert trocar(portas[0], {"tipo": "PUT", "key": "k", "value": "v%d" % i})["timestamp"] \
            == limite + i
    esperar(lambda: get_direto(portas[2], "k", limite + 1)["tipo"] == "GET_OK",
            motivo="o seguidor chegar ao ts %d" % (limite + 1))
    # Um JOIN com o endereço do seguidor, que confirma a cópia, toma o lugar do canal dele:
    # o seguidor de verdade perde o canal e refaz o JOIN, com o contador acima do limite.
    with SeguidorFalso(portas[0], "127.0.0.1:%d" % portas[2]) as falso:
        falso.resposta()
        falso.confirmar()
    assert trocar(portas[0], {"tipo": "PUT", "key": "k", "value": "fim"})["timestamp"] \
        == limite + 2
    # O seguidor volta ao líder e recebe o PUT (pelo canal ou pela cópia do JOIN).
    esperar(lambda: get_direto(portas[2], "k", limite + 2)["tipo"] == "GET_OK",
            motivo="o seguidor voltar ao líder e receber o PUT")
    assert "recusado" not in seguidor.erro(), seguidor.erro()
    exigir_tudo_em_todos(portas, {"k": ("fim", limite + 2)})
    acima = join_falso(portas[0], "127.0.0.1:2", limite + 10, {})
    assert acima["tipo"] == "ERRO", acima
    exigir_tudo_em_todos(portas, {"k": ("fim", limite + 2)})


def test_join_com_ts_na_tabela_acima_do_contador_nao_separa_os_servidores(cluster):
    """[5d] Um JOIN com contador 0 e uma key num ts acima dele: acima do limite, é recusado e
    nada muda; abaixo, o contador do líder sobe até ele, e um PUT seguinte da mesma key fica
    igual nos três servidores."""
    _, portas = cluster.tres()
    trocar(portas[0], {"tipo": "PUT", "key": "a", "value": "1"})
    recusa = join_falso(portas[0], "127.0.0.1:1", 0, {"x": ["mal", Mensagem.MAIOR_TIMESTAMP]})
    assert recusa["tipo"] == "ERRO", recusa
    assert get_direto(portas[0], "x") == {"tipo": "GET_OK", "key": "x", "value": None,
                                         "timestamp": 0}
    assert join_falso(portas[0], "127.0.0.1:1", 0, {"y": ["mal", 1000]})["tipo"] == "JOIN_OK"
    for key in ("x", "y"):
        resposta = trocar(portas[0], {"tipo": "PUT", "key": key, "value": "bom"})
        assert resposta["timestamp"] > 1000, resposta
        exigir_tudo_em_todos(portas, {key: ("bom", resposta["timestamp"])})


def test_fusao_nao_libera_put_ok_que_nenhum_seguidor_confirmou(cluster):
    """[5e] Um PUT espera o seguidor lento; um JOIN falso traz uma key nova e o líder funde.
    O PUT_OK só sai depois que o seguidor lento aplicou a escrita: lido dele com o ts do
    PUT_OK, o valor está lá."""
    (lider, _, lento), portas = cluster.tres(atraso=2)
    resultado = []
    thread = threading.Thread(target=lambda: resultado.append(
        trocar(portas[0], {"tipo": "PUT", "key": "k", "value": "v"})), daemon=True)
    thread.start()
    esperar(lambda: "Cliente" in "".join(lider.linhas_agora()), motivo="o líder ler o PUT")
    assert join_falso(portas[0], "127.0.0.1:1", 1, {"nova": ["x", 1]})["tipo"] == "JOIN_OK"
    thread.join(PRAZO)
    assert resultado and resultado[0]["tipo"] == "PUT_OK", resultado
    assert get_direto(portas[2], "k", resultado[0]["timestamp"]) == {
        "tipo": "GET_OK", "key": "k", "value": "v", "timestamp": resultado[0]["timestamp"]}
    exigir_tudo_em_todos(portas, {"k": ("v", 1), "nova": ("x", 1)})
    lider.sincronizar()
    assert "retirado" not in lider.erro(), lider.erro()


def test_put_repetido_depois_de_uma_fusao_recebe_o_ts_novo(cluster):
    """[5c] Uma fusão refaz uma escrita do líder em conflito com a de um seguidor acima do
    contador dele: o PUT repetido (mesmo id) recebe o ts que a escrita tem agora, não o de
    antes da fusão."""
    porta = cluster.lider().porta
    put = {"tipo": "PUT", "key": "k", "value": "v", "id": "pedido-1"}
    assert trocar(porta, put)["timestamp"] == 1
    assert join_falso(porta, "127.0.0.1:1", 100, {"k": ["outro", 100]})["tipo"] == "JOIN_OK"
    assert get_direto(porta, "k")["timestamp"] == 101
    assert trocar(porta, put)["timestamp"] == 101


# ------------------------------------- os detalhes, no próprio objeto Servidor (sem processos)


def test_envio_preso_num_seguidor_nao_atrasa_o_outro():
    """[5e] O canal do primeiro seguidor está cheio (ele não lê): o segundo recebe a
    REPLICATION na hora, anotada com a mesma hora de envio, e fica; só o primeiro é derrubado,
    no prazo dele."""
    servidor = lider_em_memoria()
    pares = [socket.socketpair() for _ in range(2)]
    seguidores = []
    for n, (nosso, _) in enumerate(pares):
        nosso.settimeout(0)
        seguidores.append(Servidor.CanalDoSeguidor(servidor, nosso, "127.0.0.1:%d" % (n + 1), 0))
        servidor.seguidores[seguidores[-1].origem] = seguidores[-1]
    try:
        while True:   # enche o buffer do primeiro: o outro lado não lê
            pares[0][0].send(b"x" * 65536)
    except BlockingIOError:
        pass
    try:
        with servidor.trava_put:
            servidor.gravar_e_replicar("k", "v", None)
        pares[1][1].settimeout(0)
        assert Mensagem.de_linha(pares[1][1].recv(65536)).key == "k"
        (_, primeiro), (_, segundo) = seguidores[0].pendentes[0], seguidores[1].pendentes[0]
        assert primeiro == segundo
        assert seguidores[0].motivo and seguidores[1].motivo is None
    finally:
        for a, b in pares:
            a.close()
            b.close()


def test_canal_cuja_thread_nao_comeca_nao_entra_no_conjunto(monkeypatch):
    """[5e] Sem memória para a thread do Canal, o canal não entra no conjunto (nenhum PUT
    esperaria por ele para sempre) e a conexão do JOIN é encerrada."""
    servidor = lider_em_memoria()

    def sem_memoria(self):
        raise RuntimeError("can't start new thread")
    monkeypatch.setattr(Servidor.CanalDoSeguidor, "start", sem_memoria)
    nosso, outro = socket.socketpair()
    try:
        with pytest.raises(ConnectionError):
            servidor.unir("127.0.0.1:1", nosso, servidor.tabela, 0)
        assert servidor.seguidores == {}
    finally:
        nosso.close()
        outro.close()


class DiscoCheio:
    """Um registro em disco em que toda escrita falha (disco cheio)."""

    def __init__(self, arquivo):
        self.fileno = arquivo.fileno

    def write(self, linha):
        raise OSError(28, "Não há espaço no dispositivo")

    def truncate(self, tamanho):
        pass


def test_falha_no_disco_nao_deixa_meia_escrita(tmp_path):
    """[5c] O registro em disco falha no meio de um PUT: ERRO para o cliente; o timestamp fica
    gasto, e nada mais muda (tabela, as keys do líder); uma fusão depois disso funciona."""
    servidor = lider_em_memoria(tmp_path)
    servidor.recuperar_registro()
    conexao = type("Conexao", (), {"cliente": "127.0.0.1:1"})()
    assert servidor.tratar_put(Mensagem(Mensagem.PUT, key="a", value="1"), conexao).tipo \
        == Mensagem.PUT_OK
    registro = servidor.registro
    servidor.registro = DiscoCheio(registro)
    resposta = servidor.tratar_put(Mensagem(Mensagem.PUT, key="b", value="2"), conexao)
    assert resposta.tipo == Mensagem.ERRO and "disco" in resposta.value
    assert (servidor.tabela, servidor.contador, servidor.proprias) == ({"a": ("1", 1)}, 2, {"a"})
    servidor.registro = registro
    with servidor.trava_put:
        assert servidor.fundir(Mensagem(Mensagem.JOIN, origem="127.0.0.1:2", timestamp=10,
                                        dados={"a": ["outro", 1]})) is None
    assert servidor.tabela == {"a": ("1", 11)} and servidor.contador == 11
    registro.close()


def test_falha_no_fsync_nao_repete_timestamp_nem_perde_o_put_seguinte(tmp_path, monkeypatch):
    """[5c] Com --dados --fsync, o fsync de um PUT falha depois de a linha ter sido escrita:
    esse PUT recebe ERRO e o timestamp dele fica gasto. O PUT seguinte (PUT_OK) tem outro
    timestamp e volta depois de um reinício, em vez de perder para a linha do que falhou."""
    servidor = lider_em_memoria(tmp_path)
    servidor.fsync = True
    servidor.recuperar_registro()
    conexao = type("Conexao", (), {"cliente": "127.0.0.1:1"})()
    assert servidor.tratar_put(Mensagem(Mensagem.PUT, key="a", value="1"), conexao).timestamp == 1
    fsync_de_verdade = os.fsync
    falhas = [OSError(5, "Erro de entrada/saída")]

    def fsync(descritor):
        if falhas:
            raise falhas.pop()
        fsync_de_verdade(descritor)
    monkeypatch.setattr(os, "fsync", fsync)
    assert servidor.tratar_put(Mensagem(Mensagem.PUT, key="k", value="falhou"),
                               conexao).tipo == Mensagem.ERRO
    resposta = servidor.tratar_put(Mensagem(Mensagem.PUT, key="k", value="confirmado"), conexao)
    assert (resposta.tipo, resposta.timestamp) == (Mensagem.PUT_OK, 3)
    servidor.registro.close()
    depois = lider_em_memoria(tmp_path)
    depois.recuperar_registro()
    assert depois.tabela["k"] == ("confirmado", 3) and depois.contador == 3
    depois.registro.close()


def test_fusao_com_o_disco_falhando_ainda_manda_o_que_mudou_aos_seguidores(tmp_path,
                                                                           monkeypatch):
    """[5d] Com --dados, o snapshot de uma fusão não pode ser gravado (disco cheio): a fusão
    segue (aviso em stderr) e o seguidor conectado recebe a key nova como REPLICATION."""
    servidor = lider_em_memoria(tmp_path)
    servidor.recuperar_registro()
    nosso, seguidor = socket.socketpair()
    canal = Servidor.CanalDoSeguidor(servidor, nosso, "127.0.0.1:1", 0)
    servidor.seguidores[canal.origem] = canal

    def disco_cheio(self):
        raise OSError(28, "Não há espaço no dispositivo")
    monkeypatch.setattr(Servidor, "compactar", disco_cheio)
    try:
        with servidor.trava_put:
            assert servidor.fundir(Mensagem(Mensagem.JOIN, origem="127.0.0.1:2", timestamp=5,
                                            dados={"nova": ["x", 5]})) is None
        seguidor.settimeout(PRAZO)
        recebido = Mensagem.de_linha(seguidor.makefile("rb").readline())
        assert (recebido.tipo, recebido.key, recebido.timestamp) == (Mensagem.REPLICATION,
                                                                     "nova", 5)
        assert servidor.tabela["nova"] == ("x", 5) and servidor.contador == 5
    finally:
        nosso.close()
        seguidor.close()
        servidor.registro.close()
