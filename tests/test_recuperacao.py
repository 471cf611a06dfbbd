"""Nada confirmado se perde: o líder que reinicia volta com todos os dados (dos seguidores, ou
do registro em disco com --dados), o contador nunca volta, e nenhum seguidor é esvaziado.

Os testes lentos têm logo acima um comentário "# Lento (~N s): por quê".
"""

import os
import signal
import threading
import time

import pytest

from conftest import PRAZO, Processo, aceita_conexao, enderecos, esperar, porta_livre, trocar
from Cliente import Cliente
from Mensagem import Mensagem

ESCRITORES = 8
so_posix = pytest.mark.skipif(os.name != "posix", reason="Ctrl+C e pausa por sinais POSIX")


def get(porta, key, timestamp=0):
    return trocar(porta, {"tipo": "GET", "key": key, "timestamp": timestamp})


def exigir_tudo_em_todos(portas, confirmados):
    """Cada par confirmado (key única -> value, ts) é lido igual de cada servidor."""
    for porta in portas:
        for key, (value, ts) in confirmados.items():
            resposta = get(porta, key)
            assert resposta == {"tipo": "GET_OK", "key": key, "value": value, "timestamp": ts}, \
                "servidor %d, key %s: confirmado (%r, %d), lido %r" % (porta, key, value, ts,
                                                                      resposta)


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


# Lento (~6 s): escrita contínua antes e depois do reinício, e a espera inicial do líder.
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
    cluster.servidor(portas[0], portas[0])
    esperar(lambda: escritores.quantos() >= antes + 200, motivo="200 PUTs depois da volta")
    confirmados = escritores.terminar()
    # Timestamps únicos, e os de depois da volta maiores que todos os de antes.
    todos = [ts for _, ts in confirmados.values()]
    assert len(set(todos)) == len(todos), "dois PUTs confirmados com o mesmo ts"
    assert max(todos) > maior_antes
    exigir_tudo_em_todos(portas, confirmados)
    # Nenhum cliente preso: cada um escreve a sua key fixa e a lê de volta de todo servidor.
    for n, cliente in enumerate(escritores.clientes):
        resposta, _ = cliente.put("fixa-%d" % n, "final")
        assert resposta.tipo == Mensagem.PUT_OK and resposta.timestamp > maior_antes
        for porta in portas:
            lido, _ = cliente.get("fixa-%d" % n, servidor=("127.0.0.1", porta))
            assert (lido.tipo, lido.value) == (Mensagem.GET_OK, "final"), (n, porta, lido)
        cliente.fechar()


# Lento (~5 s): dois cenários de reinício completo, com a espera inicial dos seguidores.
@pytest.mark.parametrize("ordem", ["lider_primeiro", "seguidores_primeiro"])
def test_dados_kill_9_nos_tres_e_volta_em_qualquer_ordem(cluster, tmp_path, ordem):
    """[5c] Com --dados, kill -9 nos três ao mesmo tempo: voltando em qualquer ordem, nada
    confirmado se perde e o ts continua de onde parou."""
    pasta = str(tmp_path / "dados")
    portas = [porta_livre() for _ in range(3)]
    procs = [cluster.servidor(portas[0], portas[0], "--dados", pasta)]
    procs += [cluster.servidor(porta, portas[0]) for porta in portas[1:]]
    cliente = Cliente()
    cliente.inicializar(enderecos(portas))
    esperar(lambda: all(get(p, "x")["tipo"] == "GET_OK" for p in portas), motivo="cluster pronto")
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
        cluster.servidor(portas[0], portas[0], "--dados", pasta)
    for porta in portas[1:]:
        cluster.servidor(porta, portas[0])
    if ordem == "seguidores_primeiro":
        cluster.servidor(portas[0], portas[0], "--dados", pasta)
    esperar(lambda: all(get(p, "k0")["tipo"] == "GET_OK" for p in portas),
            motivo="os três voltarem")
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


# Lento (~4 s): a espera inicial do líder novo e o aviso do seguidor.
@so_posix
def test_seguidor_mais_adiantado_que_lider_que_ja_aceitou_puts_guarda_os_dados(cluster):
    """[5d][5f] Líder reiniciado sem ninguém para adotar aceita um PUT; o seguidor que estava
    pausado (e sabe mais) não troca a tabela: avisa uma vez, responde TRY_OTHER e segue tentando."""
    (lider, outro, pausado), portas = cluster.tres()
    for i in range(5):
        trocar(portas[0], {"tipo": "PUT", "key": "k", "value": "v%d" % i})
    pausado.popen.send_signal(signal.SIGSTOP)
    try:
        lider.matar()
        outro.matar()
        cluster.servidor(portas[0], portas[0])
        resposta = trocar(portas[0], {"tipo": "PUT", "key": "k", "value": "novo"})
        assert (resposta["tipo"], resposta["timestamp"]) == ("PUT_OK", 1)
    finally:
        pausado.popen.send_signal(signal.SIGCONT)
    esperar(lambda: "divergiram" in pausado.erro(), motivo="o seguidor avisar a divergência")
    assert get(portas[2], "k") == {"tipo": "TRY_OTHER_SERVER_OR_LATER", "key": "k",
                                   "timestamp": 5}
    # Um aviso só (e nenhum "sem contato": o líder responde, só não serve).
    assert len(pausado.erro().splitlines()) == 1, pausado.erro()
