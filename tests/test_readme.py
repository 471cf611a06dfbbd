"""O README.md é de quem entrega o trabalho (SPEC, seção 8): curto, em segunda pessoa, com
comandos que valem no cmd e no Windows PowerShell 5.1 e que existem de fato (arquivos e opções).

Não sobe servidor nenhum: lê o README, o código e, no máximo, o `--help` do pytest.
"""

import ast
import contextlib
import importlib.util
import io
import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest

from conftest import RAIZ  # e a raiz no sys.path
from Servidor import Servidor

MAXIMO_DE_LINHAS = 150
PRAZO = 60  # s para um subprocesso (o --help do pytest, o .ci/run --mostrar)
# As duas linhas que o .ci/run lê do README (grep -m1 '^...'): a primeira que começa com cada uma.
INSTALAR = "python -m pip install -r tests/requisitos.txt"
TESTAR = "python -m pytest"
# O que um comando do README pode ser, além de python e py: tudo vale no cmd e no PowerShell.
OUTROS_COMANDOS = {
    r".\.venv\Scripts\activate": "ativa o ambiente virtual (activate.bat ou Activate.ps1)",
    "netstat": "quem está numa porta",
    "findstr": "filtra a saída do netstat",
}
# Um `trecho` do texto corrido é um comando quando começa assim: os do README e os que não
# podem estar nele (só de POSIX), para que estes também sejam achados e recusados.
INICIO_DE_COMANDO = re.compile(r"^(?:(?:python3?|py|pip3?|netstat|bash|sh|source|export|sudo|"
                               r"chmod|tmux)(?:\s|$)|\.[/\\])")
# Módulos que o README roda com python -m.
MODULOS = ("pip", "pytest", "venv", "py_compile")
# O Python sozinho, ou com uma opção dele ou do lançador py, sem programa depois.
SO_O_PYTHON = ([], ["--version"], ["-0"])
TERCEIRA_PESSOA = re.compile(r"\b(?:o|a|os|as|do|da|dos|das|ao|à|aos|às|pelo|pela|pelos|pelas|"
                             r"no|na|nos|nas|um|uma)\s+alun[oa]s?\b", re.I)


def carregar(relativo):
    """Importa um script de relatorio/ (não é pacote)."""
    caminho = os.path.join(RAIZ, relativo)
    nome = os.path.splitext(os.path.basename(caminho))[0]
    especificacao = importlib.util.spec_from_file_location(nome, caminho)
    modulo = importlib.util.module_from_spec(especificacao)
    especificacao.loader.exec_module(modulo)
    return modulo


def ler(relativo):
    with open(os.path.join(RAIZ, relativo), encoding="utf-8") as arquivo:
        return arquivo.read()


def blocos_de_codigo(texto):
    """[(info, [linhas])] de cada bloco cercado por ```, também dentro de listas."""
    blocos, atual, info = [], None, None
    for linha in texto.splitlines():
        cerca = re.match(r"^\s*```(.*)$", linha)
        if cerca and atual is None:
            atual, info = [], cerca.group(1).strip()
        elif cerca:
            blocos.append((info, atual))
            atual = None
        elif atual is not None:
            atual.append(linha.strip())
    assert atual is None, "um bloco de código do README não fecha"
    return blocos


def fora_dos_blocos(texto):
    """O texto corrido, sem os blocos cercados."""
    return re.sub(r"(?ms)^\s*```.*?^\s*```[ \t]*$", "", texto)


def comandos(texto):
    """Todo comando que o README mostra: cada linha de um bloco que não é saída de console
    (```text) e cada `trecho` do texto corrido que começa com um comando (python, py, ...)."""
    achados = []
    for info, linhas in blocos_de_codigo(texto):
        if info != "text":
            achados += [linha for linha in linhas if linha]
    for trecho in re.findall(r"`([^`\n]+)`", fora_dos_blocos(texto)):
        if INICIO_DE_COMANDO.match(trecho):
            achados.append(trecho)
    return achados


def opcoes_no_codigo(relativo):
    """As opções (--xxx) que um programa aceita: toda string do código que é só uma opção,
    como as de add_argument ou do dicionário de opções do Servidor."""
    arvore = ast.parse(ler(relativo))
    return {no.value for no in ast.walk(arvore)
            if isinstance(no, ast.Constant) and isinstance(no.value, str)
            and re.match(r"^--[a-z][a-z-]*$", no.value)}


def opcoes_do_servidor():
    return set(re.findall(r"\[(--[a-z-]+)", Servidor.USO))


def problema_do_programa(argumentos):
    """O que está errado em `python ARGUMENTOS` (uma frase), ou None."""
    if argumentos in SO_O_PYTHON:
        return None
    if argumentos[0] == "-m":
        return problema_do_modulo(argumentos[1], argumentos[2:])
    programa, resto = argumentos[0], argumentos[1:]
    if not programa.endswith(".py") or not os.path.isfile(os.path.join(RAIZ, programa)):
        return "%s não é um programa .py do repositório" % programa
    if programa == "Servidor.py":
        # A linha de comando é conferida pela função que o Servidor usa de verdade.
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # o --ajuda imprime o uso
                Servidor.ler_argumentos(resto)
        except ValueError as erro:
            return "o Servidor recusa %s: %s" % (resto, erro)
        except SystemExit as saida:   # --ajuda: mostra o uso e sai com 0
            if saida.code not in (0, None):
                return "o Servidor sai com %s" % saida.code
        return None
    if programa == "Cliente.py":
        return "o Cliente não aceita argumentos" if resto else None
    aceitas = opcoes_no_codigo(programa)
    for argumento in resto:
        opcao = argumento.split("=", 1)[0]
        if opcao.startswith("-") and opcao not in aceitas:
            return "%s não tem a opção %s" % (programa, opcao)
    return None


def problema_do_modulo(modulo, resto):
    if modulo not in MODULOS:
        return "python -m %s: módulo que o README não deveria rodar" % modulo
    if modulo == "pip":
        if resto[:2] != ["install", "-r"] or len(resto) != 3:
            return "o README só instala com pip install -r ARQUIVO"
        if not os.path.isfile(os.path.join(RAIZ, resto[2])):
            return "%s não existe" % resto[2]
    elif modulo == "venv":
        if resto != [".venv"]:
            return "o ambiente virtual é .venv"
    elif modulo == "py_compile":
        faltando = [nome for nome in resto if not os.path.isfile(os.path.join(RAIZ, nome))]
        if not resto or faltando:
            return "py_compile sem arquivo ou com arquivo que não existe: %s" % faltando
    elif modulo == "pytest":
        ajuda = ajuda_do_pytest()
        for argumento in resto:
            if argumento.startswith("-"):
                opcao = argumento.split("=", 1)[0]
                if not re.search(r"(?m)(?:^|[\s,])%s(?=[\s,=]|$)" % re.escape(opcao), ajuda):
                    return "o pytest (com o que tests/requisitos.txt instala) não tem %s" % opcao
            elif not re.match(r"^\d+$", argumento) and \
                    not os.path.exists(os.path.join(RAIZ, argumento)):
                return "%s não existe" % argumento
    return None


_ajuda = []


def ajuda_do_pytest():
    if not _ajuda:
        saida = subprocess.run([sys.executable, "-m", "pytest", "--help"], cwd=RAIZ,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               universal_newlines=True, timeout=PRAZO)
        _ajuda.append(saida.stdout)
    return _ajuda[0]


def problema_do_comando(comando):
    """O que está errado num comando do README (uma frase), ou None."""
    if "&&" in comando or "||" in comando or ";" in comando:
        return "encadeia comandos de um jeito que o PowerShell 5.1 ou o cmd não aceita"
    for parte in comando.split("|"):
        # Como o cmd lê: aspas duplas agrupam, a barra invertida é só um caractere.
        argumentos = shlex.split(parte.replace("\\", "/"))
        if not argumentos:
            return "comando vazio num pipe"
        nome = argumentos[0].replace("/", "\\")
        if nome == "python":
            problema = problema_do_programa(argumentos[1:])
        elif nome == "py":
            if argumentos[1:2] != ["-3.8"]:
                problema = problema_do_programa(argumentos[1:])
            else:
                problema = problema_do_programa(argumentos[2:])
        elif nome in OUTROS_COMANDOS:
            problema = None
        else:
            problema = "%s não é um comando que o README use (cmd e PowerShell)" % nome
        if problema:
            return problema
    return None


def test_readme_curto():
    """O README tem no máximo 150 linhas."""
    linhas = ler("README.md").splitlines()
    assert len(linhas) <= MAXIMO_DE_LINHAS, "README com %d linhas" % len(linhas)


def test_readme_sem_e_comercial_duplo():
    """Nenhum && no README: o Windows PowerShell 5.1 não o aceita."""
    assert "&&" not in ler("README.md")


def test_todo_comando_do_readme_existe():
    """Todo comando do README (blocos e `python ...`/`py ...` no texto) roda no cmd e no
    PowerShell, e o programa, os arquivos e as opções que ele cita existem."""
    achados = comandos(ler("README.md"))
    assert len(achados) >= 10, "o README deveria mostrar os comandos: %s" % achados
    problemas = ["%s: %s" % (comando, problema_do_comando(comando)) for comando in achados
                 if problema_do_comando(comando)]
    assert problemas == []


def test_toda_opcao_citada_existe():
    """Toda opção --xxx que o README cita, também no texto corrido, é de um programa que ele
    mostra (Servidor.py, relatorio/gerar.py, relatorio/demo.py) ou do próprio Python."""
    conhecidas = opcoes_no_codigo("Servidor.py") | opcoes_no_codigo("relatorio/gerar.py") | \
        opcoes_no_codigo("relatorio/demo.py") | {"--version"}
    # Todo o Servidor.USO é aceito por ler_argumentos (as opções de verdade).
    assert opcoes_do_servidor() <= opcoes_no_codigo("Servidor.py")
    citadas = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", ler("README.md")))
    assert citadas - conhecidas == set()


def test_as_duas_linhas_que_o_ci_le():
    """As linhas que o .ci/run lê do README estão lá, numa linha própria, num bloco de comandos:
    a primeira que começa com a instalação dos testes e a primeira que começa com python -m
    pytest (grep -m1 '^...')."""
    readme = ler("README.md")
    linhas = readme.splitlines()
    instalar = next((linha for linha in linhas if linha.startswith(INSTALAR)), None)
    testar = next((linha for linha in linhas if linha.startswith(TESTAR)), None)
    assert instalar == INSTALAR
    assert testar is not None and testar.split()[-1] == "tests", testar
    assert linhas.index(instalar) < linhas.index(testar)
    de_comando = [linha for info, bloco in blocos_de_codigo(readme) if info != "text"
                  for linha in bloco]
    assert instalar in de_comando and testar in de_comando
    if os.name == "posix" and shutil.which("bash"):
        saida = subprocess.run(["bash", os.path.join(RAIZ, ".ci", "run"), "--mostrar"],
                               cwd=RAIZ, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               universal_newlines=True, timeout=PRAZO)
        assert saida.returncode == 0, saida.stdout
        assert [linha.strip() for linha in saida.stdout.splitlines()[1:]] == [instalar, testar]


@pytest.mark.parametrize("relativo", ["README.md", "relatorio/LEIAME.md"])
def test_segunda_pessoa(relativo):
    """README e relatorio/LEIAME.md falam com você: nada de "o aluno"."""
    achados = TERCEIRA_PESSOA.findall(ler(relativo))
    assert achados == []


def test_readme_sem_numero_medido():
    """Nenhum número medido no README (as medidas ficam em relatorio/LEIAME.md e
    tests/DESEMPENHO.md, com o comando que as mede): nem porcentagem, nem "medido"."""
    readme = ler("README.md")
    assert "%" not in readme
    assert not re.search(r"\bmedid[oa]s?\b", readme, re.I)


def test_receita_do_try_other_bate_com_o_demo():
    """A receita do README é a do relatorio/demo.py: o mesmo seguidor lento, o mesmo atraso e
    os mesmos GETs por rodada."""
    demo = carregar("relatorio/demo.py")
    readme = ler("README.md")
    lento = "python Servidor.py %s %d %s %d --atraso-replicacao %d" % (
        demo.IP, demo.PORTAS[2], demo.IP, demo.PORTAS[0], demo.ATRASO)
    assert "`%s`" % lento in readme
    assert "uns %d nos %d s" % (demo.gets_por_rodada(), demo.ATRASO) in readme
    assert "py -3.8 -m py_compile Servidor.py Cliente.py Mensagem.py" in readme
    assert demo.COMPILAR in readme and demo.ABRIR in readme
