"""Cada falha custa no máximo um prazo e não estraga nada: disco cheio, seguidores travados, um
JOIN pequeno que mente, um JOIN grande, texto de fora que tentaria forjar uma linha de console."""

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from conftest import PRAZO, Mensagem, esperar, lider_em_memoria, so_posix, trocar
from Servidor import Servidor


def lider_do_disco(tmp_path):
    """Um líder em memória com --dados em tmp_path, já recuperado do disco (e compactado)."""
    servidor = lider_em_memoria(tmp_path)
    servidor.recuperar_registro()
    return servidor


def put_direto(servidor, key, value):
    conexao = type("Conexao", (), {"cliente": "127.0.0.1:1"})()
    return servidor.tratar_put(Mensagem(Mensagem.PUT, key=key, value=value), conexao)


class DiscoQueFalha:
    """O arquivo do registro com uma falha de disco na próxima escrita (falhar()), como o
    sistema a dá: 'cheio' grava metade da linha e falha (ENOSPC), 'eio' falha sem gravar
    nada, 'fsync' grava a linha inteira e o fsync falha; com volta_falha, o truncate da volta
    também falha uma vez (o registro tem de ser consertado antes da escrita seguinte)."""

    def __init__(self, arquivo, modo, volta_falha, monkeypatch):
        self.arquivo, self.modo, self.volta_falha = arquivo, modo, volta_falha
        self.escrita = self.volta = False
        fsync = os.fsync

        def fsync_que_falha(descritor):
            if self.escrita and self.modo == "fsync":
                self.escrita = False
                raise OSError(errno.EIO, "Erro de entrada/saída")
            fsync(descritor)
        monkeypatch.setattr(os, "fsync", fsync_que_falha)

    def falhar(self):
        self.escrita, self.volta = True, self.volta_falha

    def __getattr__(self, nome):
        return getattr(self.arquivo, nome)

    def write(self, linha):
        if self.escrita and self.modo == "cheio":
            self.escrita = False
            self.arquivo.write(linha[:len(linha) // 2])
            raise OSError(errno.ENOSPC, "Não há espaço no dispositivo")
        if self.escrita and self.modo == "eio":
            self.escrita = False
            raise OSError(errno.EIO, "Erro de entrada/saída")
        return self.arquivo.write(linha)

    def truncate(self, tamanho):
        if self.volta:
            self.volta = False
            raise OSError(errno.EIO, "Erro de entrada/saída")
        return self.arquivo.truncate(tamanho)


@pytest.mark.parametrize("volta_falha", [False, True], ids=["volta", "volta_falha"])
@pytest.mark.parametrize("modo", ["cheio", "eio", "fsync"])
def test_gravacao_que_falha_deixa_o_registro_como_estava(tmp_path, monkeypatch, modo,
                                                        volta_falha):
    """[5c] Com --dados, logo depois de uma compactação (na subida, e no meio do serviço) uma
    gravação falha (disco cheio, EIO, fsync): esse PUT recebe ERRO, o seguinte é guardado, e
    o líder volta da pasta com todo PUT confirmado, sem o que falhou e sem linha estragada."""
    servidor = lider_do_disco(tmp_path)
    assert put_direto(servidor, "a", "1").tipo == Mensagem.PUT_OK
    assert put_direto(servidor, "b", "2").tipo == Mensagem.PUT_OK
    servidor.registro.close()
    servidor = lider_do_disco(tmp_path)   # a subida compacta: o registro fica vazio
    arquivo = servidor.registro
    servidor.fsync = modo == "fsync"
    disco = servidor.registro = DiscoQueFalha(arquivo, modo, volta_falha, monkeypatch)
    for depois in ("c", "d"):
        disco.falhar()
        resposta = put_direto(servidor, "falhou-" + depois, "x")
        assert resposta.tipo == Mensagem.ERRO and "disco" in resposta.value, resposta
        resposta = put_direto(servidor, depois, "confirmado")
        assert resposta.tipo == Mensagem.PUT_OK, resposta
        if depois == "c":
            with servidor.trava_put:
                servidor.compactar()   # como a cada ~2 x tabela + 1 000 PUTs
    confirmados = dict(servidor.tabela)
    assert sorted(confirmados) == ["a", "b", "c", "d"]
    arquivo.close()
    with open(os.path.join(str(tmp_path), "dados", "registro"), "rb") as f:
        assert b"\0" not in f.read()
    depois = lider_do_disco(tmp_path)
    assert depois.tabela == confirmados
    assert depois.contador >= resposta.timestamp
    depois.registro.close()


def pode_montar_tmpfs():
    return sys.platform.startswith("linux") and hasattr(os, "geteuid") and os.geteuid() == 0


# Lento (~7 s): o líder sozinho espera a história (3 s) em cada subida.
@pytest.mark.skipif(not pode_montar_tmpfs(), reason="monta um tmpfs pequeno (Linux, root)")
def test_disco_cheio_de_verdade_nao_impede_o_lider_de_voltar(cluster, tmp_path):
    """[5c] Num disco de 256 KiB: o líder volta de uma queda (e compacta), o disco enche, um PUT
    recebe ERRO, o disco esvazia, o PUT seguinte é confirmado, kill -9: o líder volta da pasta
    com os PUTs confirmados."""
    disco = tmp_path / "disco"
    disco.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(disco)],
                      stderr=subprocess.DEVNULL).returncode != 0:
        pytest.skip("este sistema não deixa montar um tmpfs")
    try:
        pasta = str(disco / "dados")
        lider = cluster.lider("--dados", pasta)
        porta = lider.porta
        assert trocar(porta, {"tipo": "PUT", "key": "a", "value": "1"})["tipo"] == "PUT_OK"
        lider.matar()
        lider = cluster.servidor(porta, porta, "--dados", pasta)   # a subida compacta
        # A porta abre antes de a subida ler a pasta e compactar; a resposta a um GET mostra
        # que ela acabou (o disco só enche depois).
        assert trocar(porta, {"tipo": "GET", "key": "a", "timestamp": 0})["value"] == "1"
        enchimento = disco / "enchimento"
        with open(str(enchimento), "wb", buffering=0) as f:
            try:
                while True:
                    f.write(b"x" * 4096)
            except OSError:
                pass
        resposta = trocar(porta, {"tipo": "PUT", "key": "b", "value": "2" * 8192})
        assert resposta["tipo"] == "ERRO", resposta
        enchimento.unlink()
        confirmado = trocar(porta, {"tipo": "PUT", "key": "c", "value": "3"})
        assert confirmado["tipo"] == "PUT_OK", confirmado
        lider.matar()
        lider = cluster.servidor(porta, porta, "--dados", pasta)
        assert trocar(porta, {"tipo": "GET", "key": "a", "timestamp": 0})["value"] == "1"
        assert trocar(porta, {"tipo": "GET", "key": "c", "timestamp": 0})["timestamp"] \
            == confirmado["timestamp"]
        assert trocar(porta, {"tipo": "GET", "key": "b", "timestamp": 0})["value"] is None
        lider.terminar()
    finally:
        subprocess.run(["umount", "-l", str(disco)])


# ------------------------------------------------ texto de fora nunca forja uma linha

FORJADA = "Enviando PUT_OK ao Cliente 6.6.6.6:6 da key:FORJADA ts:999"


@pytest.mark.parametrize("origem", [
    "1.2.3.4:5\n" + FORJADA + "\nCliente 1.2.3.4:5",   # quebra de linha antes do último ":"
    "1.2.3.4:5\r" + FORJADA + " 1.2.3.4:5",
    "maquina.exemplo:5",                                 # um PUT encaminhado traz um IP
    "1.2.3.4 " + FORJADA + ":5",
])
def test_origem_de_put_que_nao_e_endereco_recebe_erro(cluster, origem):
    """[5c] A origem de um PUT (o cliente que o seguidor atendeu) tem de ser "ip:porta":
    qualquer outra coisa recebe ERRO e não aparece no console do líder."""
    lider = cluster.lider()
    resposta = trocar(lider.porta, {"tipo": "PUT", "key": "k", "value": "v", "origem": origem})
    assert resposta["tipo"] == "ERRO" and "origem" in resposta["value"], resposta
    linhas = lider.linhas_agora()
    assert linhas == [], linhas
    assert "FORJADA" not in lider.saida()


def test_origem_ipv6_de_um_put_encaminhado_e_aceita(cluster):
    """[5c] Um cliente IPv6 atendido por um seguidor: a origem "::1:porta" é um endereço."""
    (lider, _, _), portas = cluster.tres()
    resposta = trocar(portas[0], {"tipo": "PUT", "key": "k", "value": "v", "origem": "::1:5"})
    assert resposta["tipo"] == "PUT_OK", resposta
    assert lider.linhas_agora()[0] == "Cliente ::1:5 PUT key:k value:v"


@pytest.mark.parametrize("origem", ["a\nb:5", "maquina exemplo:5", "maquina:porta"])
def test_origem_de_join_que_nao_e_endereco_recebe_erro(cluster, origem):
    """A origem de um JOIN é "ip:porta" ou "nome:porta"; outra coisa recebe ERRO."""
    resposta = trocar(cluster.lider().porta, {"tipo": "JOIN", "origem": origem, "timestamp": 0})
    assert resposta["tipo"] == "ERRO" and "origem" in resposta["value"], resposta


def test_erro_do_lider_no_join_e_escapado_no_console_do_seguidor(cluster, falso):
    """Um líder (falso) recusa o JOIN com um ERRO de várias linhas: o seguidor o mostra numa
    linha só, escapado, e nunca escreve uma linha que o líder inventou."""
    seguidor = cluster.seguidor(falso.porta)
    falso.aceitar()
    falso.enviar({"tipo": "ERRO", "value": "recusado\n" + FORJADA})
    esperar(lambda: "recusado" in seguidor.erro(), motivo="o seguidor dizer a recusa")
    assert "recusado\\n" + FORJADA in seguidor.erro()
    assert not any(linha.startswith("Enviando") for linha in
                   (seguidor.saida() + seguidor.erro()).splitlines())


# ------------------------------------------------ um JOIN custa o que ele traz


def puts_em_lote(porta, quantos, prefixo, lote=200):
    """quantos PUTs numa conexão só, de lote em lote (cada lote de uma vez); as respostas."""
    respostas = []
    with socket.create_connection(("127.0.0.1", porta), timeout=PRAZO) as sock:
        leitor = sock.makefile("rb")
        for inicio in range(0, quantos, lote):
            sock.sendall(b"".join(
                json.dumps({"tipo": "PUT", "key": "%s%d" % (prefixo, i), "value": "v"}).encode()
                + b"\n" for i in range(inicio, min(quantos, inicio + lote))))
            respostas += [json.loads(leitor.readline())
                          for _ in range(min(lote, quantos - inicio))]
    return respostas


# Lento (~5 s): 20 000 PUTs, e o líder sozinho espera a história (3 s).
def test_join_pequeno_nao_refaz_as_escritas_do_lider(cluster):
    """[5c] O líder escreveu 20 000 keys desde que subiu; um JOIN de poucos bytes com o
    contador dele mais 1 e nenhuma tabela não mostra conflito: nenhuma key é refeita, o
    contador sobe só até o do JOIN, e os seguidores não recebem REPLICATION nenhuma."""
    (lider, seg1, seg2), portas = cluster.tres()
    respostas = {}
    threads = [threading.Thread(target=lambda n=n: respostas.update(
        (r["key"], r) for r in puts_em_lote(portas[0], 5000, "k%d-" % n))) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r["tipo"] for r in respostas.values()) == ["PUT_OK"] * 20000
    contador = max(r["timestamp"] for r in respostas.values())
    for proc in (seg1, seg2):
        proc.marcar()
    resposta = trocar(portas[0], {"tipo": "JOIN", "origem": "127.0.0.1:1",
                                  "timestamp": contador + 1})
    assert resposta["tipo"] == "JOIN_OK" and resposta["timestamp"] == contador + 1
    assert trocar(portas[0], {"tipo": "PUT", "key": "depois", "value": "v"})["timestamp"] \
        == contador + 2
    for key in ("k0-0", "k3-4999"):
        assert trocar(portas[0], {"tipo": "GET", "key": key, "timestamp": 0})["timestamp"] \
            == respostas[key]["timestamp"]
    for proc in (seg1, seg2):
        assert proc.linhas_agora() == ["REPLICATION key:depois value:v ts:%d" % (contador + 2)]


# ------------------------------------------------ seguidores travados: um prazo só


def put_em_thread(porta, key, value, fins):
    def rodar():
        resposta = trocar(porta, {"tipo": "PUT", "key": key, "value": value}, prazo=60)
        fins[key] = (time.monotonic(), resposta["tipo"])
    thread = threading.Thread(target=rodar, daemon=True)
    thread.start()
    return thread


# Lento (~4 s): o prazo de replicação (3 s) passa de verdade.
@so_posix
def test_dois_seguidores_travados_custam_um_prazo_so(cluster):
    """[5e] Os dois seguidores param (SIGSTOP). O líder recebe um PUT maior que os buffers do
    sistema e, logo depois, um pequeno de outra key: nenhum espera mais que um
    --prazo-replicacao (3 s, mais 1 s de folga) antes de os seguidores saírem, e o PUT
    seguinte não espera ninguém."""
    prazo = 3
    (lider, seg1, seg2), portas = cluster.tres(extras_lider=("--prazo-replicacao", str(prazo)))
    for proc in (seg1, seg2):
        proc.popen.send_signal(signal.SIGSTOP)
    try:
        fins = {}
        threads = [put_em_thread(portas[0], "grande", "x" * (6 * 1024 * 1024), fins)]
        esperar(lambda: "PUT key:grande" in lider.saida(), motivo="o líder receber o PUT grande")
        recebido = time.monotonic()
        threads.append(put_em_thread(portas[0], "pequena", "v", fins))
        for thread in threads:
            thread.join(60)
        assert {k: t for k, (_, t) in fins.items()} == {"pequena": "PUT_OK", "grande": "PUT_OK"}
        assert max(fim - recebido for fim, _ in fins.values()) <= prazo + 1.0, fins
        assert trocar(portas[0], {"tipo": "PUT", "key": "depois", "value": "v"})["tipo"] \
            == "PUT_OK"
    finally:
        for proc in (seg1, seg2):
            proc.popen.send_signal(signal.SIGCONT)


# ------------------------------------------------ o JOIN sai logo depois do connect


def join_ok_com(keys):
    """A linha de um JOIN_OK com keys entradas, montada direto em bytes (rápido)."""
    dados = b",".join(b'"k%d":["v",1]' % i for i in range(keys))
    return b'{"tipo":"JOIN_OK","dados":{' + dados + b'},"timestamp":1}\n'


# Lento (~6 s): o seguidor instala e depois codifica uma tabela de 1 milhão de keys.
def test_join_de_tabela_grande_sai_logo_depois_do_connect(cluster, falso):
    """[5f] Um seguidor com 1 milhão de keys perde o canal e volta: os primeiros bytes do JOIN
    chegam logo depois do connect (ele monta a linha antes), e não depois de codificar a
    tabela (~1 s), que deixaria um líder recém-subido dar timestamps sem ouvi-lo."""
    seguidor = cluster.seguidor(falso.porta)
    falso.aceitar()   # o JOIN (vazio)
    falso.canal.sendall(join_ok_com(1000000))
    assert falso.receber()["tipo"] == "REPLICATION_OK"
    falso.fechar_canal()
    sock, _ = falso.ouvinte.accept()
    with sock:
        aceito = time.monotonic()
        sock.settimeout(PRAZO)
        primeiro = sock.recv(64)
        chegou = time.monotonic() - aceito
    assert primeiro.startswith(b'{"tipo":"JOIN",')
    # Montar o JOIN de 1 milhão de keys leva ~0,7 s aqui; mandar o que já está montado, uns
    # milissegundos: 0,2 s é mais de 10 vezes isso, e bem menos que montar.
    assert chegou < 0.2, "os primeiros bytes do JOIN chegaram %.2f s depois do connect" % chegou
    seguidor.exigir_vivo()


def test_join_e_montado_uma_vez_por_canal_perdido(falso, monkeypatch):
    """[5a] Sem canal a tabela do seguidor não muda: o JOIN é montado uma vez por canal perdido
    e as tentativas seguintes (um líder que fecha a conexão) mandam a mesma linha, sem codificar
    a tabela de novo: um seguidor com milhões de keys esperando o líder não gasta CPU nisso."""
    seguidor = Servidor("127.0.0.1", 10098, "127.0.0.1", falso.porta)  # sem porta de escuta
    seguidor.tabela, seguidor.maior_ts = {"k": ("v", 5)}, 5
    montagens = []
    montar = seguidor.pedir_join
    monkeypatch.setattr(seguidor, "pedir_join", lambda: montagens.append(1) or montar())
    Servidor.CanalDoLider(seguidor).start()
    try:
        for _ in range(3):
            join = falso.aceitar()
            assert (join["timestamp"], join["dados"]) == (5, {"k": ["v", 5]}), join
            falso.fechar_canal()   # o líder fecha antes do JOIN_OK: o seguidor tenta de novo
    finally:
        seguidor.parar.set()
    assert len(montagens) == 1

