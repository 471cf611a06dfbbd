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

import pytest

from conftest import (PRAZO, Processo, aceita_conexao, enderecos, esperar, esperar_unido,
                      porta_livre, trocar)
from Cliente import Cliente
from Mensagem import Mensagem

ESCRITORES = 8
so_posix = pytest.mark.skipif(os.name != "posix", reason="Ctrl+C e pausa por sinais POSIX")


def get(porta, key, timestamp=0):
    return trocar(porta, {"tipo": "GET", "key": key, "timestamp": timestamp})


def exigir_tudo_em_todos(portas, confirmados):
    """Cada PUT confirmado (key -> value, ts) é lido de cada servidor com o mesmo value e um ts
    igual ou maior (uma fusão refaz as escritas do líder novo acima do contador do seguidor),
    e todos os servidores respondem igual. Espera os seguidores que refazem o JOIN."""
    def iguais():
        return all(len({json.dumps(get(p, key)) for p in portas}) == 1 for key in confirmados)
    esperar(iguais, motivo="os servidores terem a mesma tabela")
    for key, (value, ts) in confirmados.items():
        resposta = get(portas[0], key)
        assert (resposta["tipo"], resposta["value"]) == ("GET_OK", value), (key, resposta)
        assert resposta["timestamp"] >= ts, (key, ts, resposta)


def tabela_do_lider(porta):
    """A tabela inteira do líder, pelo snapshot que ele manda a um JOIN (que não confirma e
    não traz nada: o líder não funde nada e não o põe no conjunto)."""
    with socket.create_connection(("127.0.0.1", porta), timeout=PRAZO) as sock:
        sock.sendall(json.dumps({"tipo": "JOIN", "origem": "127.0.0.1:1"}).encode() + b"\n")
        resposta = json.loads(sock.makefile("rb").readline())
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
            try:
                resposta, _ = cliente.put(key, value)
            except ConnectionError:
                resposta = None
            with self.trava:
                if resposta is not None and resposta.tipo == Mensagem.PUT_OK:
                    self.confirmados[key] = (value, resposta.timestamp)
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
    """[5c][5e] Ctrl+C ou kill -9 no líder com 8 clientes escrevendo; ele volta sem opção
    nenhuma: todo PUT confirmado está em todos, o ts segue subindo, nenhum cliente preso."""
    (lider, _, _), portas = cluster.tres()
    escritores = Escritores(portas)
    esperar(lambda: escritores.quantos() >= 200, motivo="200 PUTs antes da queda")
    if como == "ctrl_c":
        lider.interromper()
        lider.popen.wait(PRAZO)
    else:
        lider.matar()
    antes = escritores.quantos()
    maior_antes = max(ts for _, ts in dict(escritores.confirmados).values())
    novo = cluster.servidor(portas[0], portas[0])
    esperar(lambda: escritores.quantos() >= antes + 200, motivo="200 PUTs depois da volta")
    confirmados = escritores.terminar()
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
    portas = [porta_livre() for _ in range(3)]
    procs = [cluster.servidor(portas[0], portas[0], "--dados", pasta)]
    procs += [cluster.servidor(porta, portas[0]) for porta in portas[1:]]
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
        proc.popen.wait(PRAZO)
    if ordem == "lider_primeiro":
        lider = cluster.servidor(portas[0], portas[0], "--dados", pasta)
    for porta in portas[1:]:
        cluster.servidor(porta, portas[0])
    if ordem == "seguidores_primeiro":
        lider = cluster.servidor(portas[0], portas[0], "--dados", pasta)
    for porta in portas[1:]:
        esperar_unido(lider, porta)
    exigir_tudo_em_todos(portas, confirmados)
    assert trocar(portas[1], {"tipo": "PUT", "key": "k", "value": "v"})["timestamp"] == 61


def registro_com_puts(tmp_path, quantos):
    """Sobe um líder com --dados, grava quantos PUTs e o mata (kill -9); devolve (pasta, porta)."""
    pasta, porta = str(tmp_path / "dados"), porta_livre()
    lider = Processo(["Servidor.py", "127.0.0.1", str(porta), "127.0.0.1", str(porta),
                      "--dados", pasta], str(tmp_path), "antes")
    try:
        esperar(lambda: lider.exigir_vivo() or aceita_conexao(porta), motivo="abrir a porta")
        for i in range(quantos):
            assert trocar(porta, {"tipo": "PUT", "key": "k%d" % (i % 7),
                                  "value": "v%d" % i})["timestamp"] == i + 1
    finally:
        lider.matar()
    return pasta, porta


def subir_lider(tmp_path, pasta, porta, nome):
    return Processo(["Servidor.py", "127.0.0.1", str(porta), "127.0.0.1", str(porta),
                     "--dados", pasta], str(tmp_path), nome, porta=porta)


def test_ultima_linha_cortada_e_descartada_com_um_aviso(tmp_path):
    """[5c] Uma queda no meio da gravação deixa a última linha pela metade: ela é descartada
    com uma linha em stderr, e o resto volta inteiro."""
    pasta, porta = registro_com_puts(tmp_path, 10)
    with open(os.path.join(pasta, "registro"), "ab") as registro:
        registro.write(b'{"tipo":"REPLICATION","key":"k0","value":"meia')
    lider = subir_lider(tmp_path, pasta, porta, "depois")
    try:
        esperar(lambda: lider.exigir_vivo() or aceita_conexao(porta), motivo="abrir a porta")
        assert get(porta, "k2") == {"tipo": "GET_OK", "key": "k2", "value": "v9",
                                    "timestamp": 10}
        assert trocar(porta, {"tipo": "PUT", "key": "n", "value": "v"})["timestamp"] == 11
        lider.sincronizar()   # o aviso veio antes desta linha, pela mesma fila do console
        erros = lider.erro().splitlines()
        assert len(erros) == 1 and "última linha cortada" in erros[0], erros
    finally:
        lider.terminar()


@pytest.mark.parametrize("estrago", ["linha_do_meio", "tipo_errado", "snapshot"])
def test_registro_danificado_para_o_servidor_com_mensagem_clara(tmp_path, estrago):
    """[5c] Dano que não é a última linha cortada: o servidor não sobe (código 2), diz o
    arquivo e a linha, e não apaga nada."""
    pasta, porta = registro_com_puts(tmp_path, 10)
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
    lider = subir_lider(tmp_path, pasta, porta, "depois")
    assert lider.popen.wait(PRAZO) == 2
    erro = lider.erro()
    assert erro.startswith("Registro em disco danificado: %s" % caminho), erro
    assert "Traceback" not in erro and len(erro.splitlines()) == 1
    with open(caminho, "rb") as arquivo:
        assert arquivo.read() == b"".join(linhas), "o arquivo danificado foi mexido"


def test_registro_e_compactado_e_volta_igual(tmp_path):
    """[5c] O registro vira snapshot quando cresce além de um múltiplo da tabela; a volta
    depois de um kill -9 traz tudo."""
    pasta, porta = registro_com_puts(tmp_path, 1200)
    with open(os.path.join(pasta, "registro"), "rb") as registro:
        assert len(registro.read().splitlines()) < 1200, "o registro não foi compactado"
    lider = subir_lider(tmp_path, pasta, porta, "depois")
    try:
        esperar(lambda: lider.exigir_vivo() or aceita_conexao(porta), motivo="abrir a porta")
        for i in range(1193, 1200):
            assert get(porta, "k%d" % (i % 7)) == {"tipo": "GET_OK", "key": "k%d" % (i % 7),
                                                  "value": "v%d" % i, "timestamp": i + 1}
        assert trocar(porta, {"tipo": "PUT", "key": "n", "value": "v"})["timestamp"] == 1201
        assert lider.erro() == ""
    finally:
        lider.terminar()


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
    assert contador > contador_antes
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
    portas = [porta_livre() for _ in range(3)]
    lider = cluster.servidor(portas[0], portas[0], "--dados",
                             pasta_com_tabela(tmp_path, tabela, contador))
    for porta in portas[1:]:
        cluster.servidor(porta, portas[0])
        esperar_unido(lider, porta)
    lider.matar()
    lider, ts = lider_novo_com_um_put_na_hora(cluster, portas[0])
    tabela["depois"] = ("do reinício", ts)
    exigir_cluster_inteiro(portas, lider, tabela, contador)


@pytest.mark.parametrize("como", ["atraso", pytest.param("pausa", marks=so_posix)])
def test_seguidor_dormindo_quando_o_lider_reinicia_traz_tudo_de_volta(cluster, como):
    """[5c][5d] O único seguidor está dormindo (no --atraso-replicacao, ou pausado) quando o
    líder reinicia; o líder novo aceita um PUT; o seguidor volta e nada confirmado se perde."""
    portas = [porta_livre() for _ in range(2)]
    lider = cluster.servidor(portas[0], portas[0])
    extras = ("--atraso-replicacao", "1") if como == "atraso" else ()
    seguidor = cluster.servidor(portas[1], portas[0], *extras)
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
    portas = [porta_livre() for _ in range(3)]
    lider = cluster.servidor(portas[0], portas[0], "--dados", pasta)
    for porta in portas[1:]:
        cluster.servidor(porta, portas[0])
        esperar_unido(lider, porta)
    confirmados = {}
    for i in range(20):
        if i == 10:
            shutil.copytree(pasta, pasta + "-velha")
        resposta = trocar(portas[0], {"tipo": "PUT", "key": "k%d" % i, "value": "v%d" % i})
        confirmados["k%d" % i] = ("v%d" % i, resposta["timestamp"])
    lider.matar()
    shutil.rmtree(pasta)
    shutil.copytree(pasta + "-velha", pasta)
    lider, ts = lider_novo_com_um_put_na_hora(cluster, portas[0], "--dados", pasta)
    assert ts == 11   # o líder só sabe do que a cópia velha tem
    confirmados["depois"] = ("do reinício", ts)
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
    mentira = socket.create_connection(("127.0.0.1", portas[0]), timeout=PRAZO)
    mentira.sendall(json.dumps({"tipo": "JOIN", "origem": "127.0.0.1:2", "dados": {},
                                "timestamp": 10 ** 6}).encode() + b"\n")
    assert json.loads(mentira.makefile("rb").readline())["tipo"] == "JOIN_OK"
    mentira.close()
    resposta = trocar(portas[0], {"tipo": "PUT", "key": "k0", "value": "novo"})
    assert resposta["timestamp"] > 10 ** 6
    esperado = {"k%d" % i: ("v%d" % i, i + 1) for i in range(1, 5)}
    esperado["k0"] = ("novo", resposta["timestamp"])
    exigir_tudo_em_todos(portas, esperado)
    meia.close()


def test_escrita_do_lider_novo_sobe_acima_de_uma_versao_de_antes_com_ts_maior(cluster):
    """[5f] Dois seguidores voltam a um líder que reiniciou e aceitou k1 e k2: o primeiro (com
    contador 98) faz o líder refazer k1 e k2 em 99 e 100; o segundo traz a k1 de antes em ts
    100, que um cliente pode ter lido. A k1 do líder novo sobe acima dela: quem viu ts 100 lê
    a k1 nova, em vez de TRY_OTHER para sempre."""
    porta = porta_livre()
    cluster.servidor(porta, porta)
    for key in ("k1", "k2"):
        assert trocar(porta, {"tipo": "PUT", "key": key, "value": "novo"})["tipo"] == "PUT_OK"
    falsos = []
    for origem, timestamp, dados in (("127.0.0.1:1", 98, {"m": ["de antes", 98]}),
                                     ("127.0.0.1:2", 100, {"k1": ["de antes", 100]})):
        with socket.create_connection(("127.0.0.1", porta), timeout=PRAZO) as sock:
            sock.sendall(json.dumps({"tipo": "JOIN", "origem": origem, "timestamp": timestamp,
                                     "dados": dados}).encode() + b"\n")
            falsos.append(json.loads(sock.makefile("rb").readline()))
    assert [f["tipo"] for f in falsos] == ["JOIN_OK", "JOIN_OK"]
    assert falsos[0]["dados"]["k1"] == ["novo", 99] and falsos[0]["timestamp"] == 100
    lido = get(porta, "k1", 100)
    assert (lido["tipo"], lido["value"]) == ("GET_OK", "novo") and lido["timestamp"] > 100, lido
    assert get(porta, "m", 98) == {"tipo": "GET_OK", "key": "m", "value": "de antes",
                                   "timestamp": 98}
