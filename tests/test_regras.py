"""As regras da SPEC seção 1 lidas do código (AST, vermin) ou vistas rodando, e a Mensagem sem
rede."""

import ast
import io
import os
import socket
import subprocess
import sys

import pytest

from conftest import (PRAZO, RAIZ, Mensagem, linha_json, recursos, recursos_em_repouso,
                      so_com_proc)

ARQUIVOS = {"Servidor.py": "Servidor", "Cliente.py": "Cliente", "Mensagem.py": "Mensagem"}
# Biblioteca padrão, e nada que faça parte do trabalho (socketserver, asyncio, http.server...).
PERMITIDOS = {"socket", "threading", "json", "random", "sys", "time", "os", "errno", "ipaddress",
              "collections", "Mensagem"}
MARCADORES = {"Cliente.py": ["[4a]", "[4b]", "[4c]"],
              "Servidor.py": ["[5a]", "[5b]", "[5c]", "[5d]", "[5e]", "[5f]", "[threads]"]}


def arvore(nome):
    with open(os.path.join(RAIZ, nome), encoding="utf-8") as f:
        return ast.parse(f.read(), nome)


@pytest.mark.parametrize("nome", sorted(ARQUIVOS))
def test_uma_classe_por_arquivo_e_threads_aninhadas(nome):
    """Só Servidor, Cliente e Mensagem no topo; classe aninhada só se for Thread."""
    modulo = arvore(nome)
    assert [n.name for n in modulo.body if isinstance(n, ast.ClassDef)] == [ARQUIVOS[nome]]
    principal = next(n for n in modulo.body if isinstance(n, ast.ClassDef))
    for no in ast.walk(principal):
        if isinstance(no, ast.ClassDef) and no is not principal:
            bases = [ast.dump(b) for b in no.bases]
            assert bases == [ast.dump(ast.parse("threading.Thread", mode="eval").body)], no.name


@pytest.mark.parametrize("nome", sorted(ARQUIVOS))
def test_so_biblioteca_padrao_permitida(nome):
    """Imports: só socket, threading, json e afins; nada de socketserver, asyncio etc."""
    for no in ast.walk(arvore(nome)):
        if isinstance(no, ast.Import):
            modulos = [a.name for a in no.names]
        elif isinstance(no, ast.ImportFrom):
            modulos = [no.module]
        else:
            continue
        for modulo in modulos:
            assert modulo.split(".")[0] in PERMITIDOS, (nome, modulo)


CONEXOES = 20


@so_com_proc
def test_servidor_tem_thread_por_conexao(cluster):
    """[5b][threads] Uma thread por conexão, contada rodando: com 20 conexões abertas ao mesmo
    tempo, cada uma é atendida (a última aberta primeiro) e o servidor tem 20 threads a mais."""
    lider = cluster.lider()
    base = recursos_em_repouso(lider.popen.pid)[0]
    conexoes = [socket.create_connection(("127.0.0.1", lider.porta), timeout=PRAZO)
                for _ in range(CONEXOES)]
    try:
        for sock in reversed(conexoes):
            sock.sendall(linha_json({"tipo": "GET", "key": "k", "timestamp": 0}))
            with sock.makefile("rb") as arquivo:
                assert Mensagem.de_linha(arquivo.readline()).tipo == Mensagem.GET_OK
        # Cada uma já respondeu: a thread dela existe e segue esperando o próximo pedido.
        assert recursos(lider.popen.pid)[0] >= base + CONEXOES
    finally:
        for sock in conexoes:
            sock.close()


@pytest.mark.parametrize("nome", sorted(MARCADORES))
def test_marcadores_das_secoes_4_e_5(nome):
    """Cada funcionalidade tem o seu marcador em comentário ([4a]..[4c], [5a]..[5f], [threads])."""
    with open(os.path.join(RAIZ, nome), encoding="utf-8") as f:
        comentarios = [l.strip() for l in f if l.strip().startswith("#")]
    for marcador in MARCADORES[nome]:
        assert any(c.startswith("# " + marcador) for c in comentarios), marcador


# Métodos de tipos embutidos (str, bytes, bytearray, int, object) mais novos que o 3.8: os da
# tabela do próprio vermin 1.9.2 (vermin.MOD_MEM_REQS), a versão de tests/requisitos.txt. O
# vermin só os aponta quando sabe o tipo de quem chama: valor.removeprefix() num parâmetro
# passa calado por ele, e este teste o pega pelo nome.
METODOS_NOVOS = {"removeprefix": (3, 9), "removesuffix": (3, 9), "bit_count": (3, 10),
                 "__match_args__": (3, 10), "is_integer": (3, 12), "take_bytes": (3, 15)}


def test_nada_mais_novo_que_o_python_3_8():
    """O professor usa Python 3.8: o vermin (--target=3.8-) não acha nos três arquivos
    sintaxe, módulo, função, argumento ou anotação mais novos, nem chamada de um método de
    tipo embutido mais novo (removeprefix, bit_count...)."""
    arquivos = [os.path.join(RAIZ, nome) for nome in sorted(ARQUIVOS)]
    resultado = subprocess.run(
        [sys.executable, "-c", "import sys, vermin; sys.exit(vermin.main())", "--target=3.8-",
         "--violations", "--no-tips", "--eval-annotations", "--no-parse-comments"] + arquivos,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
        timeout=PRAZO)
    assert resultado.returncode == 0, resultado.stdout
    chamados = ["%s:%d %s (Python %d.%d)" % ((nome, no.lineno, no.attr) + METODOS_NOVOS[no.attr])
                for nome in sorted(ARQUIVOS) for no in ast.walk(arvore(nome))
                if isinstance(no, ast.Attribute) and no.attr in METODOS_NOVOS]
    assert chamados == []


# -------------------------------------------------------------- Mensagem


@pytest.mark.parametrize("valor", ["simples", "", "duas\nlinhas\r\n", "ação, 日本語, 🚀",
                                   "\"aspas\" e \\barras\\", None])
def test_mensagem_ida_e_volta(valor):
    """Uma linha JSON por mensagem: quebra de linha e acentos vão e voltam iguais."""
    original = Mensagem(Mensagem.PUT_OK, key="chave ç", value=valor, timestamp=42)
    linha = original.para_linha()
    assert linha.endswith(b"\n") and linha.count(b"\n") == 1
    volta = Mensagem.receber(io.BytesIO(linha))
    assert (volta.tipo, volta.key, volta.value, volta.timestamp) == \
        (Mensagem.PUT_OK, "chave ç", valor, 42)


def test_mensagem_snapshot_e_origem():
    """JOIN_OK leva dados key -> [value, ts]; PUT encaminhado leva origem."""
    dados = {"a": ["1", 1], "b": [None, 2]}
    volta = Mensagem.de_linha(Mensagem(Mensagem.JOIN_OK, dados=dados, timestamp=2).para_linha())
    assert volta.dados == dados and volta.timestamp == 2
    volta = Mensagem.de_linha(Mensagem(Mensagem.PUT, key="k", value="v",
                                       origem="127.0.0.1:5000").para_linha())
    assert volta.origem == "127.0.0.1:5000"


@pytest.mark.parametrize("linha", [
    b"nao e json\n", b"[1,2]\n", b"{}\n", b'{"tipo":"XYZ"}\n', b'{"tipo":"PUT","key":"k"}\n',
    b'{"tipo":"PUT","key":1,"value":"v"}\n', b'{"tipo":"PUT","key":"","value":"v"}\n',
    b'{"tipo":"GET","key":"k","timestamp":"1"}\n', b'{"tipo":"GET","key":"k","timestamp":-1}\n',
    b'{"tipo":"GET","key":"k","timestamp":1e400}\n', b'{"tipo":"GET","key":"k","timestamp":true}\n',
    b'{"tipo":"GET","key":"k","timestamp":99999999999999999999999}\n',
    b'{"tipo":"GET","key":"k","timestamp":NaN}\n', b'{"tipo":"GET","key":"\\ud800","timestamp":0}\n',
    b'{"tipo":"JOIN","origem":"sem porta"}\n', b'{"tipo":"JOIN_OK","dados":{"k":"v"},"timestamp":0}\n',
    b'\xff\xfe{"tipo":"GET"}\n', b"[" * 100000 + b"\n",
])
def test_mensagem_invalida_levanta_value_error(linha):
    """Entrada inválida vira ValueError (que o servidor transforma em ERRO)."""
    with pytest.raises(ValueError):
        Mensagem.receber(io.BytesIO(linha))


def test_mensagem_ignora_campos_desconhecidos_e_linha_cortada():
    """Campos a mais são ignorados; linha cortada pelo fim da conexão é fim (None)."""
    volta = Mensagem.de_linha(b'{"tipo":"GET","key":"k","timestamp":0,"extra":[1]}\n')
    assert (volta.tipo, volta.key, volta.timestamp) == ("GET", "k", 0)
    assert Mensagem.receber(io.BytesIO(b'{"tipo":"GET"')) is None
    assert Mensagem.receber(io.BytesIO(b"")) is None


def test_mensagem_linha_gigante_e_descartada_inteira():
    """Linha acima de 16 MiB: ValueError, e a próxima mensagem continua legível."""
    arquivo = io.BytesIO(b"x" * (Mensagem.LIMITE_LINHA + 10) + b"\n" +
                         b'{"tipo":"GET","key":"k","timestamp":0}\n')
    with pytest.raises(ValueError):
        Mensagem.receber(arquivo)
    assert Mensagem.receber(arquivo).tipo == Mensagem.GET


def test_para_linha_escreve_json_compacto_em_utf8():
    """[8] A Mensagem vira JSON compacto numa linha: acentos e emoji em UTF-8, quebra de linha,
    aspas, barra e controles escapados pelo JSON (os bytes que a Mensagem sempre escreveu)."""
    value = 'duas\nlinhas "aspas" \\ \x00\x7f 😀 \u2028'
    put = Mensagem(Mensagem.PUT, key="chave ç", value=value, id="a1")
    assert put.para_linha() == (b'{"tipo":"PUT","key":"chave \xc3\xa7","value":"duas\\nlinhas '
                                b'\\"aspas\\" \\\\ \\u0000\x7f \xf0\x9f\x98\x80 \xe2\x80\xa8",'
                                b'"id":"a1"}\n')
    snapshot = Mensagem(Mensagem.JOIN_OK, dados={"k": ["v", 1], "ç": [None, 2]}, timestamp=2)
    assert snapshot.para_linha() == \
        b'{"tipo":"JOIN_OK","dados":{"k":["v",1],"\xc3\xa7":[null,2]},"timestamp":2}\n'


@pytest.mark.parametrize("limite, sobra, texto", [
    (1000, 10, "linha maior que 1000 bytes"),                    # cabe na folga: lida inteira
    (1000, Mensagem.FOLGA + 10, "linha maior que 1000 bytes"),   # nem cabe: descartada
    (2 * 1024 * 1024, 10, "linha maior que 2 MiB"),
])
def test_erro_de_linha_longa_diz_o_limite_em_vigor(limite, sobra, texto):
    """O ValueError de uma linha longa demais diz o limite que valia, não sempre 16 MiB."""
    linha = b'{"tipo":"GET","key":"' + b"k" * (limite + sobra) + b'","timestamp":0}\n'
    with pytest.raises(ValueError) as erro:
        Mensagem.receber(io.BytesIO(linha), limite=limite)
    assert str(erro.value) == texto


def test_erro_de_join_longo_diz_o_limite_do_join(monkeypatch):
    """Um JOIN acima do limite do JOIN (join=True) é recusado com esse limite na mensagem."""
    monkeypatch.setattr(Mensagem, "LIMITE_JOIN", 3 * 1024 * 1024)
    linha = Mensagem(Mensagem.JOIN, origem="127.0.0.1:10098",
                     dados={"k": ["v" * (4 * 1024 * 1024), 1]}, timestamp=1).para_linha()
    with pytest.raises(ValueError) as erro:
        Mensagem.receber(io.BytesIO(linha), limite=1024 * 1024, join=True)
    assert str(erro.value) == "JOIN maior que 3 MiB"


@pytest.mark.parametrize("sobra", [100, 500, Mensagem.FOLGA])
def test_join_um_pouco_acima_do_limite_de_pedido_passa_com_join(sobra):
    """Com join=True, um JOIN logo acima do limite de um pedido é aceito, como um bem maior
    (antes, os que cabiam na folga eram recusados, e o seguidor nunca se unia)."""
    limite = 4096
    vazio = Mensagem(Mensagem.JOIN, origem="127.0.0.1:10098", dados={"k": ["", 1]}, timestamp=1)
    value = "v" * (limite + sobra - len(vazio.para_linha()))
    linha = Mensagem(Mensagem.JOIN, origem="127.0.0.1:10098", dados={"k": [value, 1]},
                     timestamp=1).para_linha()
    assert len(linha) == limite + sobra
    assert Mensagem.receber(io.BytesIO(linha), limite=limite, join=True).dados == {"k": [value, 1]}
    with pytest.raises(ValueError):
        Mensagem.receber(io.BytesIO(linha), limite=limite)
