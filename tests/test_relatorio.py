"""O relatório (relatorio/): as citações de linhas batem com o código, o ZIP de entrega e a demo."""

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile

import pytest

from conftest import RAIZ, aceita_conexao, esperar, porta_livre

PASTA = os.path.join(RAIZ, "relatorio")
GERAR = os.path.join(PASTA, "gerar.py")
PDF = os.path.join(PASTA, "RA.pdf")
FONTES = ("Servidor.py", "Cliente.py", "Mensagem.py")
PRAZO_GERAR = 120.0   # gerar e ler o PDF leva poucos segundos; isto é só o teto
VIDEO = "https://youtu.be/a1B2c3D4e5F"
DADOS = ["--nome", "Ana Souza", "--ra", "123456", "--video", VIDEO]


def carregar(nome, caminho):
    """Importa relatorio/gerar.py ou relatorio/demo.py (não são pacotes)."""
    especificacao = importlib.util.spec_from_file_location(nome, caminho)
    modulo = importlib.util.module_from_spec(especificacao)
    especificacao.loader.exec_module(modulo)
    return modulo


gerar = carregar("gerar", GERAR)
demo = carregar("demo", os.path.join(PASTA, "demo.py"))


def rodar(*argumentos, script=GERAR):
    """Roda gerar.py como a pessoa rodaria; devolve o processo terminado."""
    ambiente = dict(os.environ, PYTHONUTF8="1", PYTHONIOENCODING="utf-8")
    return subprocess.run([sys.executable, script] + list(argumentos), cwd=RAIZ,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ambiente,
                          universal_newlines=True, encoding="utf-8", timeout=PRAZO_GERAR)


def copia(destino):
    """Uma cópia do projeto (os três .py e o relatório com o PDF commitado) para estragar."""
    os.makedirs(os.path.join(destino, "relatorio"))
    for fonte in FONTES:
        shutil.copy(os.path.join(RAIZ, fonte), os.path.join(destino, fonte))
    for arquivo in ("gerar.py", "relatorio.typ", "estilo.typ", "RA.pdf"):
        shutil.copy(os.path.join(PASTA, arquivo), os.path.join(destino, "relatorio", arquivo))
    return os.path.join(destino, "relatorio", "gerar.py")


def editar(caminho, trocar):
    with open(caminho, encoding="utf-8") as f:
        linhas = f.read().split("\n")
    with open(caminho, "w", encoding="utf-8") as f:
        f.write("\n".join(trocar(linhas)))


def linha_do_marcador(linhas, marcador):
    return next(i for i, linha in enumerate(linhas) if linha.strip().startswith("# " + marcador))


# ------------------------------------------------------------ o PDF commitado

def test_pdf_commitado_bate_com_o_codigo():
    """O PDF commitado cita exatamente as linhas do código de hoje (gerar.py --verificar)."""
    resultado = rodar("--verificar")
    assert resultado.returncode == 0, resultado.stderr
    assert "as citações batem com o código" in resultado.stdout


def test_pdf_tem_as_sete_secoes_e_as_tres_figuras():
    """O PDF tem as seções I a VII do enunciado, as três figuras e nenhuma linha digitada à mão."""
    texto = gerar.texto_do_pdf(PDF)
    for secao in ("I. Identificação", "II. Vídeo", "III. O que o vídeo mostra", "IV. O servidor",
                  "V. O cliente", "VI. Threads", "VII. Fontes"):
        assert secao in texto, secao
    for figura in ("Figura 1.", "Figura 2.", "Figura 3."):
        assert figura in texto, figura
    # Na fonte, nenhum "Arquivo.py:123": toda citação vem de um marcador ou nome.
    assert not re.search(r"(Servidor|Cliente|Mensagem)\.py:\d", gerar.ler_texto())


def test_figuras_sao_texto_legivel_e_nao_imagem():
    """[9 III] As figuras 1 e 2 são as linhas reais dos consoles, compostas em texto (o PDF não
    tem imagem nenhuma); a linha que prova cada uma (GET normal, TRY_OTHER) está destacada."""
    from pypdf import PdfReader
    assert sum(len(pagina.images) for pagina in PdfReader(PDF).pages) == 0
    corrido = gerar.sem_espacos(gerar.texto_do_pdf(PDF))
    provas = {"get_normal": r"GET key: nome value: Ana obtido do servidor .*",
              "try_other": r"GET key: nome value: TRY_OTHER_SERVER_OR_LATER obtido do .*"}
    for nome, prova in provas.items():
        with open(os.path.join(PASTA, "figuras", nome + ".json"), encoding="utf-8") as f:
            figura = json.load(f)
        destacadas = []
        for console in figura["consoles"]:
            for linha in console["linhas"]:
                texto = "".join(pedaco for _, pedaco in linha["pedacos"])
                assert gerar.sem_espacos(texto) in corrido, (nome, texto)
                if linha["destaque"]:
                    destacadas.append(texto)
        assert any(re.fullmatch(prova, texto) for texto in destacadas), (nome, destacadas)


def test_diagrama_do_put_e_fonte_typst_sem_imagem_gerada():
    """O diagrama do PUT é desenhado pelo typst (figuras/sequencia.typ), sem matplotlib nem PNG:
    refazer o PDF em outro Python não muda nada no checkout. Ele mostra o REPLICATION_OK que
    confirma a cópia da tabela (JOIN_OK) antes do PUT."""
    assert sorted(os.listdir(os.path.join(PASTA, "figuras"))) == \
        ["get_normal.json", "sequencia.typ", "try_other.json"]
    fonte = gerar.ler_texto()
    assert '#import "figuras/sequencia.typ"' in fonte and "image(" not in fonte
    texto = gerar.texto_do_pdf(PDF)
    inicio = texto.index("JOIN_OK (snapshot, ts 0)")
    assert "REPLICATION_OK ts=0" in texto[inicio:]
    assert texto.index("REPLICATION_OK ts=0") < texto.index("PUT nome=Ana origem=A")


def test_pdf_modelo_refeito_e_igual_ao_commitado(tmp_path):
    """Refazer o modelo (python relatorio/gerar.py), em qualquer Python, dá o RA.pdf commitado
    byte a byte: seguir o README não deixa o git com mudança."""
    pdf = str(tmp_path / "RA.pdf")
    resultado = rodar("--saida", pdf)
    assert resultado.returncode == 0, resultado.stderr
    with open(pdf, "rb") as novo, open(PDF, "rb") as commitado:
        assert novo.read() == commitado.read(), \
            "relatorio/RA.pdf está velho: rode python relatorio/gerar.py e faça commit do PDF"


def test_relatorio_cita_todos_os_marcadores_obrigatorios():
    """[4a]-[4c], [5a]-[5f] e [threads] existem no código e são citados no relatório."""
    codigo = gerar.Codigo()
    citacoes, _, problemas = gerar.esperado(codigo, gerar.percorrer(gerar.ler_texto()))
    assert problemas == []
    citados = {marca for marca, _, _, _ in citacoes if marca}
    assert set(gerar.OBRIGATORIOS) <= citados


# ------------------------------------------------- o texto que o professor lê

# O que o PDF da entrega não pode nomear: ele vai no ZIP só com Servidor.py, Cliente.py e
# Mensagem.py (enunciado, seção 10), e o professor não tem como abrir mais nada.
FORA_DO_ZIP = ("relatorio/", "demo.py", "video.py", "gerar.py", "tests/", "test_", "README",
               ".typ", "requisitos", "taxa_try_other", "LEIAME", "figuras/", ".json", ".png")
# Seção -> (o título seguinte, o limite de palavras). A parte "Além do enunciado" é a última da
# seção IV: o que vai além dele cabe em poucas frases (SPEC, seção 8).
LIMITES = {"IV. O servidor": ("V. O cliente", 800), "V. O cliente": ("VI. Threads", 400),
           "Além do enunciado": ("V. O cliente", 120)}
# Palavras nossas, não do enunciado nem do dia a dia (o professor não as conhece).
PALAVRAS_PRIVADAS = r"\b(unid[oa]s?|conjunto|sina(?:l|is)|fatias?|épocas?)\b"


@pytest.fixture(scope="module")
def pdf_da_entrega(tmp_path_factory):
    """O texto do PDF como o aluno o entrega (com nome, RA e vídeo; sem a faixa de modelo)."""
    pdf = str(tmp_path_factory.mktemp("entrega") / "123456.pdf")
    resultado = rodar(*DADOS + ["--saida", pdf])
    assert resultado.returncode == 0, resultado.stderr
    return pdf


def texto_corrido(pdf):
    """O texto do PDF sem o rodapé de cada página."""
    texto = gerar.texto_do_pdf(pdf)
    return re.sub(r"^(?:Projeto de Programação – KV Store\s*·\s*)?\d+ / \d+\s*$", "", texto,
                  flags=re.M)


def test_relatorio_nao_nomeia_arquivo_fora_do_zip(pdf_da_entrega):
    """[10] O PDF da entrega não cita script, teste, README nem figura de fora do ZIP."""
    texto = texto_corrido(pdf_da_entrega)
    assert [nome for nome in FORA_DO_ZIP if nome in texto] == []


@pytest.mark.parametrize("secao", sorted(LIMITES))
def test_secoes_iv_e_v_no_limite_de_palavras(pdf_da_entrega, secao):
    """[9 IV, 9 V] Uma breve explicação por funcionalidade: a seção IV tem até 800 palavras, a V
    até 400 e a parte "Além do enunciado" até 120, contadas no PDF entre um título e o seguinte
    (figuras e citações contam)."""
    texto = texto_corrido(pdf_da_entrega)
    seguinte, limite = LIMITES[secao]
    inicio = texto.index(secao)
    palavras = len(texto[inicio:texto.index(seguinte, inicio)].split())
    assert palavras <= limite, "%s tem %d palavras (limite %d)" % (secao, palavras, limite)


# Uma palavra partida com hífen no fim de uma linha, como o pypdf a lê: "ZooKee -\nper".
HIFENIZADA = re.compile(r"(\S+?) ?-\n(\S+)")


def hifenizadas_com_maiuscula(texto):
    """As palavras partidas no fim de uma linha que começam com maiúscula: nomes próprios
    (ZooKeeper, Windows, Python), nomes do protocolo (REPLICATION_OK) e classes (Conexao)."""
    return [achado.group(1) + "-" + achado.group(2) for achado in HIFENIZADA.finditer(texto)
            if achado.group(1)[:1].isupper()]


def test_relatorio_sem_nome_proprio_ou_de_protocolo_hifenizado(pdf_da_entrega):
    """Nenhum nome próprio (ZooKeeper, Windows, Python), do protocolo (REPLICATION_OK,
    TRY_OTHER_SERVER_OR_LATER) ou de classe partido com hífen no fim de uma linha: toda palavra
    que começa com maiúscula vai inteira."""
    texto = gerar.texto_do_pdf(pdf_da_entrega)
    assert hifenizadas_com_maiuscula(texto) == []
    # A conferência acha o que procura: "ZooKee -\nper" e "REPLI -\nCATION_OK" são achados.
    assert hifenizadas_com_maiuscula("do ZooKee -\nper: e REPLI-\nCATION_OK e comen-\ntário") \
        == ["ZooKee-per:", "REPLI-CATION_OK"]


# O corpo da página fica entre as margens de cima e de baixo (20 mm, como no estilo.typ): fora
# delas, só a faixa de modelo e o rodapé.
MARGEM = 20 / 25.4 * 72


def textos_do_pdf(pdf):
    """Por página: (altura da página, [(texto, y da linha de base, tamanho da letra em pt)])."""
    from pypdf import PdfReader
    paginas = []
    for pagina in PdfReader(pdf).pages:
        textos = []

        def anotar(texto, cm, tm, fonte, tamanho):
            if texto.strip():
                x, y = tm[4], tm[5]
                escala = (tm[0] ** 2 + tm[1] ** 2) ** 0.5 * (cm[0] ** 2 + cm[1] ** 2) ** 0.5
                textos.append((texto, cm[1] * x + cm[3] * y + cm[5], tamanho * escala))
        pagina.extract_text(visitor_text=anotar)
        paginas.append((float(pagina.mediabox.height), textos))
    return paginas


def paginas_mais_que_meio_vazias(pdf):
    """As páginas, salvo a última, em que o corpo acaba antes da metade: mais de meia página em
    branco embaixo. Devolve [(página, fração em branco)]."""
    vazias = []
    paginas = textos_do_pdf(pdf)
    for numero, (altura, textos) in enumerate(paginas[:-1], start=1):
        corpo = [y for _, y, _ in textos if MARGEM <= y <= altura - MARGEM]
        util = altura - 2 * MARGEM
        branco = (min(corpo) - MARGEM) / util if corpo else 1.0
        if branco > 0.5:
            vazias.append((numero, round(branco, 2)))
    return vazias


def test_nenhuma_pagina_mais_que_meio_vazia(pdf_da_entrega):
    """Nenhuma página, salvo a última, tem mais de meia página em branco (uma figura grande que
    não coube, ou poucas linhas que sobraram para uma página nova)."""
    assert paginas_mais_que_meio_vazias(pdf_da_entrega) == []
    assert paginas_mais_que_meio_vazias(PDF) == []


def textos_das_figuras():
    """O texto das três figuras: as linhas dos consoles (figuras 1 e 2) e cada linha de cada
    rótulo do diagrama do PUT (figura 3), como estão nas fontes."""
    linhas = []
    for nome in ("get_normal", "try_other"):
        with open(os.path.join(PASTA, "figuras", nome + ".json"), encoding="utf-8") as f:
            for console in json.load(f)["consoles"]:
                linhas.append(console["titulo"])
                linhas += ["".join(p for _, p in linha["pedacos"]) for linha in console["linhas"]]
    with open(os.path.join(PASTA, "figuras", "sequencia.typ"), encoding="utf-8") as f:
        fonte = "\n".join(l for l in f.read().splitlines() if not l.lstrip().startswith("//"))
    i = fonte.find("[")
    while i >= 0:
        rotulo = conteudo_de(fonte, i)
        linhas += [pedaco.strip() for pedaco in rotulo.split("\\ ")]
        i = fonte.find("[", i + len(rotulo) + 2)
    return [linha for linha in linhas if linha.strip()]


def test_figuras_com_letra_de_8_pt_ou_mais(pdf_da_entrega):
    """As figuras se leem impressas: todo o texto delas (consoles, rótulos, notas e títulos do
    diagrama) sai em 8 pt ou mais."""
    grandes = ""
    for _, textos in textos_do_pdf(pdf_da_entrega):
        grandes += "".join(texto for texto, _, tamanho in textos if tamanho >= 8 - 1e-6)
    grandes = gerar.sem_espacos(grandes)
    figuras = textos_das_figuras()
    assert len(figuras) > 50
    assert [linha for linha in figuras if gerar.sem_espacos(linha) not in grandes] == []


def test_nenhuma_linha_de_figura_quebrada(pdf_da_entrega):
    """Cada linha de console das figuras 1 e 2, e cada rótulo do diagrama, cabe numa linha só
    do PDF: nenhuma quebra deixa um pedaço (o timestamp, o value) sozinho na linha de baixo."""
    linhas_do_pdf = [" ".join(linha.split()) for linha in
                     gerar.texto_do_pdf(pdf_da_entrega).splitlines()]
    quebradas = [linha for linha in textos_das_figuras()
                 if not any(" ".join(linha.split()) in l for l in linhas_do_pdf)]
    assert quebradas == []


def paginas_terminam_em_titulo(pdf, fonte):
    """As páginas em que o último título não tem depois dele duas linhas de texto (a linha
    "Código:" não conta): o título ficou sozinho no pé da página."""
    from pypdf import PdfReader
    titulos = {linha.lstrip("= ").strip() for linha in fonte.splitlines()
               if linha.startswith("==")}
    sozinhos = []
    for numero, pagina in enumerate(PdfReader(pdf).pages, start=1):
        linhas = [linha.strip() for linha in (pagina.extract_text() or "").splitlines()
                  if linha.strip() and not re.search(r"\d+ / \d+$", linha)]
        ultimo = max((i for i, linha in enumerate(linhas) if linha in titulos), default=None)
        if ultimo is not None:
            depois = [linha for linha in linhas[ultimo + 1:] if not linha.startswith("Código:")]
            if len(depois) < 2:
                sozinhos.append((numero, linhas[ultimo]))
    return sozinhos


def test_nenhuma_pagina_termina_num_titulo(pdf_da_entrega):
    """Todo título fica na mesma página que o texto que vem depois dele."""
    assert paginas_terminam_em_titulo(pdf_da_entrega, gerar.ler_texto()) == []


def prosa(fonte):
    """O texto do relatorio.typ que vira prosa: sem comentários, código e blocos cercados."""
    return gerar.PADRAO_FONTE.sub(lambda achado: achado.group(0) if achado.group("funcao")
                                  else " ", fonte)


def paragrafos_por_item(fonte):
    """Nas seções IV e V: item (título de nível 3) -> quantos parágrafos de texto ele tem, sem
    contar a linha "Código:" (#codigo) nem as figuras."""
    inicio = fonte.index("\n== IV.")
    fim = fonte.index("\n== VI.")
    contagem = {}
    partes = re.split(r"^(=+) ", fonte[inicio:fim], flags=re.M)
    for nivel, item in zip(partes[1::2], partes[2::2]):
        if nivel != "===":
            continue   # o título da seção e a introdução dela
        titulo, corpo = item.split("\n", 1)
        for funcao in ("#codigo[", "#figure("):
            achado = corpo.find(funcao)
            while achado >= 0:
                abre = achado + len(funcao) - 1
                if funcao.endswith("("):
                    # #figure(sequencia(), caption: [...]) <rotulo>: até o fim da legenda.
                    legenda = corpo.index("caption: [", abre) + len("caption: ")
                    fecha = legenda + len(conteudo_de(corpo, legenda)) + 2
                    fecha = corpo.index("\n", fecha)
                else:
                    fecha = abre + len(conteudo_de(corpo, abre)) + 2
                corpo = corpo[:achado] + corpo[fecha:]
                achado = corpo.find(funcao)
        texto = prosa(corpo)
        blocos = [b for b in re.split(r"\n\s*\n", texto)
                  if b.strip() and not re.fullmatch(r"[\s\]\[#]*(?:place\.flush\(\))?[\s\]]*",
                                                  b)]
        contagem[titulo.strip()] = len(blocos)
    return contagem


def test_um_paragrafo_por_item_nas_secoes_iv_e_v():
    """[9 IV, 9 V] Cada funcionalidade (5a-5f, 4a-4c) e a parte "Além do enunciado" são um
    parágrafo curto, depois da linha "Código:"."""
    contagem = paragrafos_por_item(gerar.ler_texto())
    assert sorted(contagem) == sorted(
        ["5a · Inicialização", "5b · Requisições simultâneas", "5c · PUT", "5d · REPLICATION",
         "5e · REPLICATION_OK e PUT_OK", "5f · GET", "Além do enunciado: fora das hipóteses dele",
         "4a · INIT", "4b · PUT", "4c · GET"])
    assert {titulo: n for titulo, n in contagem.items() if n != 1} == {}
    # A contagem vê um segundo parágrafo.
    assert paragrafos_por_item("\n== IV.\n=== 5a · X\n#codigo[#c[5a].]\n\nUm.\n\nDois.\n"
                               "\n== VI.\n") == {"5a · X": 2}


def test_relatorio_sem_palavras_privadas():
    """A prosa usa palavras comuns ("conectado", "seguidores conectados", "espera"), não as
    nossas ("unido", "conjunto", "sinal", "fatia", "época")."""
    achadas = re.findall(PALAVRAS_PRIVADAS, prosa(gerar.ler_texto()), flags=re.I)
    assert achadas == []


def conteudo_de(fonte, inicio):
    """O texto entre os colchetes de uma chamada #funcao[...] que abre em fonte[inicio]."""
    profundidade = 0
    for i in range(inicio, len(fonte)):
        if fonte[i] == "[":
            profundidade += 1
        elif fonte[i] == "]":
            profundidade -= 1
            if profundidade == 0:
                return fonte[inicio + 1:i]
    raise AssertionError("colchete sem par em %r" % fonte[inicio:inicio + 60])


def test_linha_codigo_nao_repete_faixa_do_paragrafo():
    """A linha "Código:" de cada seção não repete uma faixa (dela mesma ou do texto da seção),
    nem uma que só difere por uma linha (o marcador e o def logo abaixo dele, p. ex.)."""
    codigo = gerar.Codigo()
    fonte = gerar.ler_texto()
    repetidas = []
    for secao in re.split(r"^=+ ", fonte, flags=re.M)[1:]:
        titulo = secao.splitlines()[0]
        achado = secao.find("#codigo[")
        if achado < 0:
            continue
        linha_codigo = conteudo_de(secao, achado + len("#codigo"))
        resto = secao[:achado] + secao[achado + len("#codigo") + len(linha_codigo) + 2:]

        def faixas_de(texto):
            return [(item.valor, faixa) for item in gerar.percorrer(texto)
                    if isinstance(item, gerar.Item) for faixa in codigo.resolver(item.valor)]
        na_linha = faixas_de(linha_codigo)
        pares = [(a, b) for i, a in enumerate(na_linha) for b in na_linha[i + 1:]]
        pares += [(a, b) for a in na_linha for b in faixas_de(resto)]
        for (ref, (arquivo, inicio, fim)), (outra, (arquivo2, inicio2, fim2)) in pares:
            if arquivo == arquivo2 and abs(inicio - inicio2) <= 1 and abs(fim - fim2) <= 1:
                repetidas.append("%s: %s e %s (%s:%d-%d)" % (titulo, ref, outra, arquivo,
                                                            inicio2, fim2))
    assert repetidas == []


# ------------------------------------------------------ --verificar pega o erro

def test_verificar_falha_quando_uma_linha_entra_acima_de_um_marcador(tmp_path):
    """Uma linha nova acima de # [5f] desloca o trecho: --verificar falha e diz o trecho novo."""
    script = copia(str(tmp_path))
    antes = gerar.formatar(gerar.Codigo().marcador("5f"))
    servidor = os.path.join(str(tmp_path), "Servidor.py")

    def inserir(linhas):
        i = linha_do_marcador(linhas, "[5f]")
        return linhas[:i] + ["    # uma linha nova"] + linhas[i:]
    editar(servidor, inserir)
    depois = gerar.formatar(gerar.Codigo(str(tmp_path)).marcador("5f"))
    assert depois != antes
    resultado = rodar("--verificar", script=script)
    assert resultado.returncode == 1
    assert "[5f] diz %s, mas o código de hoje dá %s" % (antes, depois) in resultado.stderr


def test_verificar_falha_quando_um_marcador_some(tmp_path):
    """Sem o comentário # [4b] no Cliente.py, --verificar falha e diz que o marcador sumiu."""
    script = copia(str(tmp_path))
    cliente = os.path.join(str(tmp_path), "Cliente.py")
    editar(cliente, lambda linhas: [l.replace("# [4b] ", "# ") for l in linhas])
    resultado = rodar("--verificar", script=script)
    assert resultado.returncode == 1
    assert "o marcador [4b] sumiu do código" in resultado.stderr


def test_verificar_falha_quando_o_codigo_mostrado_muda(tmp_path):
    """Mudar uma linha mostrada em {{trecho sem-threads}}, sem deslocar nada, faz --verificar
    falhar."""
    script = copia(str(tmp_path))
    cliente = os.path.join(str(tmp_path), "Cliente.py")
    with open(cliente, encoding="utf-8") as f:
        linhas = f.read().split("\n")
    i = linha_do_marcador(linhas, "[sem-threads]")
    editar(cliente, lambda linhas: linhas[:i] + ["    # [sem-threads] outro comentário"]
           + linhas[i + 1:])
    resultado = rodar("--verificar", script=script)
    assert resultado.returncode == 1
    assert "{{trecho sem-threads}}" in resultado.stderr


# ---------------------------------------------------------------- o ZIP

def test_pdf_gerado_do_zero_com_nome_ra_e_video(tmp_path):
    """O PDF sai do zero com o que está instalado, com nome, RA e vídeo, e bate com o código."""
    pdf = str(tmp_path / "123456.pdf")
    resultado = rodar(*DADOS + ["--saida", pdf])
    assert resultado.returncode == 0, resultado.stderr
    texto = gerar.texto_do_pdf(pdf)
    for dado in ("Ana Souza", "123456", VIDEO):
        assert dado in texto, dado
    assert gerar.FALTA not in texto and "MODELO" not in texto
    assert gerar.verificar(pdf) == []


def test_pdf_commitado_e_claramente_um_modelo():
    """O RA.pdf commitado diz em toda página que é um modelo, com os três campos por preencher."""
    from pypdf import PdfReader
    paginas = [pagina.extract_text() for pagina in PdfReader(PDF).pages]
    assert all("MODELO, não entregue este PDF" in pagina for pagina in paginas)
    texto = gerar.texto_do_pdf(PDF)
    for campo in ("nome", "ra", "video"):
        assert gerar.FALTA + campo in texto, campo


def test_zip_tem_exatamente_os_tres_fontes_e_o_pdf(tmp_path):
    """--zip monta [RA].zip com exatamente Servidor.py, Cliente.py, Mensagem.py e [RA].pdf."""
    pdf = str(tmp_path / "gerado.pdf")
    resultado = rodar(*DADOS + ["--saida", pdf, "--zip", "--destino", str(tmp_path)])
    assert resultado.returncode == 0, resultado.stderr
    caminho = os.path.join(str(tmp_path), "123456.zip")
    with zipfile.ZipFile(caminho) as arquivo_zip:
        assert sorted(arquivo_zip.namelist()) == ["123456.pdf", "Cliente.py", "Mensagem.py",
                                                  "Servidor.py"]
        for fonte in FONTES:
            with open(os.path.join(RAIZ, fonte), "rb") as f:
                assert arquivo_zip.read(fonte) == f.read(), fonte
        with open(pdf, "rb") as f:
            assert arquivo_zip.read("123456.pdf") == f.read()


@pytest.mark.parametrize("tirar", ["--nome", "--ra", "--video"])
def test_zip_recusa_sem_nome_ra_ou_video(tmp_path, tirar):
    """Sem nome, RA ou vídeo, --zip sai com código 2 numa linha que diz o que falta, e sem ZIP."""
    i = DADOS.index(tirar)
    resultado = rodar(*DADOS[:i] + DADOS[i + 2:] + ["--zip", "--destino", str(tmp_path)])
    assert resultado.returncode == 2
    assert resultado.stderr.strip().splitlines() == [
        "ERRO: --zip precisa de nome, RA e link do vídeo; falta %s" % tirar]
    assert os.listdir(str(tmp_path)) == []


@pytest.mark.parametrize("link, motivo", [
    ("https://youtu.be/...", "é um exemplo"),          # o do README, como está
    ("https://youtu.be/\u2026", "é um exemplo"),
    ("https://www.youtube.com/watch?v=exemplo", "é um exemplo"),
    ("SEU_LINK", "é um exemplo"),
    ("youtu.be/a1B2c3D4e5F", "não é um link"),          # sem https://
    ("https://localhost/video", "não é um link"),
    ("https://vimeo.com/", "não é o link de um vídeo"),
])
def test_gerar_recusa_link_de_exemplo_ou_que_nao_e_link(tmp_path, link, motivo):
    """[9 II] --video com o exemplo do README ou algo que não é link: código 2, uma linha em
    stderr dizendo por quê, e nada gravado (nem PDF nem ZIP)."""
    i = DADOS.index("--video")
    dados = DADOS[:i + 1] + [link] + DADOS[i + 2:]
    resultado = rodar(*dados + ["--saida", str(tmp_path / "x.pdf"), "--zip",
                                "--destino", str(tmp_path)])
    assert resultado.returncode == 2
    linhas = resultado.stderr.strip().splitlines()
    assert len(linhas) == 1 and linhas[0].startswith("ERRO: --video ") and motivo in linhas[0], \
        linhas
    assert os.listdir(str(tmp_path)) == []


@pytest.mark.parametrize("link", ["https://youtu.be/a1B2c3D4e5F",
                                  "https://www.youtube.com/watch?v=a1B2c3D4e5F",
                                  "https://vimeo.com/123456789",
                                  "https://drive.google.com/file/d/1aB2cD3eF4/view?usp=sharing"])
def test_link_de_video_de_verdade_e_aceito(link):
    """Links do YouTube, Vimeo e Google Drive passam na conferência do gerar.py."""
    assert gerar.problema_do_link(link) is None


def test_zip_recusa_o_pdf_modelo(tmp_path):
    """--zip com --pdf do modelo commitado (campos por preencher) sai com código 2, sem ZIP."""
    resultado = rodar(*DADOS + ["--pdf", PDF, "--zip", "--destino", str(tmp_path)])
    assert resultado.returncode == 2
    assert len(resultado.stderr.strip().splitlines()) == 1
    assert "é o modelo" in resultado.stderr
    assert os.listdir(str(tmp_path)) == []


def test_zip_recusa_pdf_que_nao_bate_com_o_codigo(tmp_path):
    """Com uma citação desatualizada, --zip não monta o ZIP."""
    script = copia(str(tmp_path / "projeto"))
    servidor = str(tmp_path / "projeto" / "Servidor.py")
    editar(servidor, lambda linhas: ["# linha nova no topo"] + linhas)
    pdf = str(tmp_path / "projeto" / "relatorio" / "RA.pdf")
    resultado = rodar(*DADOS + ["--zip", "--pdf", pdf, "--destino", str(tmp_path)],
                      script=script)
    assert resultado.returncode == 1
    assert not os.path.exists(str(tmp_path / "123456.zip"))


# ------------------------------------------------- como uma citação é resolvida

CODIGO_DE_TESTE = {
    "Servidor.py": '''class Servidor:
    LIMITE = 3

    # [5a] acima de um def: a função inteira
    def abrir(self):
        x = 1
        # [5e] acima de vários comandos: o parágrafo inteiro, até a linha em branco
        sinal = []
        if x:
            sinal.append(x)
        # um comentário comum não fecha o parágrafo
        resposta = dict(x=x,
                        sinal=sinal)

        return resposta

    # [threads] acima de um def decorado: com o decorador
    @staticmethod
    def servir():
        # [5c] o parágrafo para antes do próximo marcador
        a = 1
        if a:
            # [threads] nem que o marcador esteja dentro do comando seguinte
            a = 2
        while a:
            # [5d] o parágrafo acaba com o bloco
            b = (a,
                 a)
            a = 0
        return a
''',
    "Cliente.py": "class Cliente:\n    # [4a] texto\n    X = 1\n",
    "Mensagem.py": 'class Mensagem:\n    """# [9z] dentro de string não é marcador"""\n',
}

# Marcadores fora da regra: o trecho de cada um pararia antes do fim do que ele anota.
CODIGO_MAL_MARCADO = '''class Servidor:
    def abrir(self):
        x = max(1,
                # [5a] dentro de parênteses
                2)
        y = 1  # [5b] no fim da linha
        if x:
            y = 2
            # [5c] solto no fim do bloco
        # [5d] separado do código por uma linha em branco

        return y
'''


def escrever_codigo(pasta, trocas=None):
    """Os três arquivos de CODIGO_DE_TESTE (com as trocas dadas) na pasta."""
    for nome, texto in dict(CODIGO_DE_TESTE, **(trocas or {})).items():
        with open(os.path.join(pasta, nome), "w", encoding="utf-8") as f:
            f.write(texto)


@pytest.fixture
def codigo(tmp_path):
    escrever_codigo(str(tmp_path))
    return gerar.Codigo(str(tmp_path))


def test_trecho_do_marcador_e_o_paragrafo_que_ele_anota(codigo):
    """O trecho de um marcador vai do comentário ao fim do parágrafo que ele anota, inteiro."""
    # Acima de um def: a função inteira, com as linhas em branco de dentro dela.
    assert gerar.texto_citacao("5a", codigo.marcador("5a")) == "[5a] Servidor.py:4-15"
    # Acima de vários comandos: todos até a linha em branco, o último (de duas linhas) inteiro;
    # não só o primeiro comando (7-8), como antes.
    assert gerar.texto_citacao("5e", codigo.marcador("5e")) == "[5e] Servidor.py:7-13"
    # Um def decorado conta do decorador; o trecho para antes de um comando com outro marcador.
    assert gerar.texto_citacao("threads", codigo.marcador("threads")) == \
        "[threads] Servidor.py:17-30, 23-24"
    assert gerar.texto_citacao("5c", codigo.marcador("5c")) == "[5c] Servidor.py:20-21"
    # No fim do bloco o parágrafo acaba, e o comando de várias linhas entra inteiro.
    assert gerar.texto_citacao("5d", codigo.marcador("5d")) == "[5d] Servidor.py:26-29"
    assert gerar.texto_citacao("4a", codigo.marcador("4a")) == "[4a] Cliente.py:2-3"
    assert "9z" not in codigo.marcadores
    assert codigo.problemas == []


def test_trecho_nunca_para_no_meio_de_um_comando(codigo):
    """Todo comando que começa no trecho de um marcador termina dentro dele."""
    comandos = [no for arvore in codigo.arvores.values() for no in gerar.ast.walk(arvore)
                if isinstance(no, gerar.ast.stmt)]
    for marcador, trechos in codigo.marcadores.items():
        for _, inicio, fim in trechos:
            for no in comandos:
                if inicio <= gerar.inicio_de(no) <= fim:
                    assert no.end_lineno <= fim, (marcador, inicio, fim, no.lineno)


def test_corte_diz_o_que_fica_de_fora(codigo):
    """Um trecho que para antes do fim do parágrafo do marcador é um corte, com as linhas."""
    assert codigo.corte("Servidor.py", 7, 13) is None
    assert codigo.corte("Servidor.py", 7, 8) == \
        "o marcador da linha 7 anota as linhas 7-13, e as linhas 9-13 ficam de fora"
    assert codigo.corte("Servidor.py", 7, 12) == ("o marcador da linha 7 anota as linhas 7-13, "
                                                  "e o comando das linhas 12-13 fica cortado "
                                                  "na linha 12")


def test_marcador_fora_da_regra_e_problema(tmp_path):
    """Marcador no fim de uma linha, entre parênteses, solto no fim de um bloco ou separado do
    código por linha em branco: o problema diz o arquivo, a linha e o marcador."""
    escrever_codigo(str(tmp_path), {"Servidor.py": CODIGO_MAL_MARCADO})
    codigo = gerar.Codigo(str(tmp_path))
    problemas = "\n".join(codigo.problemas)
    assert "Servidor.py:4: o marcador [5a] está dentro de parênteses" in problemas
    assert "Servidor.py:6: o marcador [5b] está no fim de uma linha de código" in problemas
    assert "Servidor.py:9: o marcador [5c] não está alinhado com o comando seguinte" in problemas
    assert "Servidor.py:10: o marcador [5d] está separado do código por uma linha em branco" \
        in problemas
    assert len(codigo.problemas) == 4
    # Gerar (que chama esperado) não passa com eles.
    _, _, todos = gerar.esperado(codigo, gerar.percorrer("#c[5a] #c[5b] #c[5c] #c[5d]\n"))
    assert set(codigo.problemas) <= set(todos)


def pdf_com_texto(caminho, texto):
    """Um PDF de uma página com o texto dado, feito pelo typst (só as fontes dele)."""
    import typst
    fonte = caminho + ".typ"
    with open(fonte, "w", encoding="utf-8") as f:
        f.write(texto)
    with open(caminho, "wb") as f:
        f.write(typst.compile(fonte, ignore_system_fonts=True))
    return caminho


def test_verificar_recusa_citacao_que_para_antes_do_fim_do_bloco(tmp_path):
    """[5e] Um PDF que cita só o comentário e o primeiro comando (a espera e o PUT_OK de fora)
    faz --verificar falhar, com o marcador e as linhas; o trecho inteiro passa."""
    projeto = str(tmp_path / "projeto")
    os.makedirs(os.path.join(projeto, "relatorio"))
    escrever_codigo(projeto)
    shutil.copy(GERAR, os.path.join(projeto, "relatorio", "gerar.py"))
    with open(os.path.join(projeto, "relatorio", "relatorio.typ"), "w", encoding="utf-8") as f:
        f.write("O PUT_OK sai em #c[5e].\n")
    script = os.path.join(projeto, "relatorio", "gerar.py")
    cortado = pdf_com_texto(str(tmp_path / "cortado.pdf"), "O PUT_OK sai em [5e] Servidor.py:7-8.")
    inteiro = pdf_com_texto(str(tmp_path / "inteiro.pdf"), "O PUT_OK sai em [5e] Servidor.py:7-13.")

    resultado = rodar("--verificar", "--pdf", cortado, script=script)
    assert resultado.returncode == 1
    assert ("a citação [5e] Servidor.py:7-8 para antes do fim: o marcador da linha 7 anota as "
            "linhas 7-13, e as linhas 9-13 ficam de fora") in resultado.stderr

    resultado = rodar("--verificar", "--pdf", inteiro, script=script)
    assert "para antes do fim" not in resultado.stderr
    assert "a citação [5e]" not in resultado.stderr


def test_gerar_e_verificar_recusam_marcador_fora_da_regra(tmp_path):
    """Um marcador no fim de uma linha de código: gerar sai com código 2 e --verificar com 1,
    os dois dizendo o arquivo, a linha e o marcador."""
    script = copia(str(tmp_path))
    servidor = os.path.join(str(tmp_path), "Servidor.py")
    with open(servidor, encoding="utf-8") as f:
        i = linha_do_marcador(f.read().split("\n"), "[5f]") + 1   # a linha depois do marcador
    editar(servidor, lambda linhas: linhas[:i] + [linhas[i] + "  # [5f] no fim da linha"]
           + linhas[i + 1:])
    esperado = "Servidor.py:%d: o marcador [5f] está no fim de uma linha de código" % (i + 1)
    resultado = rodar("--saida", str(tmp_path / "saida.pdf"), script=script)
    assert resultado.returncode == 2
    assert esperado in resultado.stderr
    assert not os.path.exists(str(tmp_path / "saida.pdf"))
    resultado = rodar("--verificar", script=script)
    assert resultado.returncode == 1
    assert esperado in resultado.stderr


def test_referencia_a_nome_do_codigo(codigo):
    """[Classe.metodo] e [Classe.CONSTANTE] viram arquivo e linhas, sem marcador na frente."""
    assert gerar.texto_citacao("Servidor.servir", codigo.simbolo("Servidor.servir")) == \
        "Servidor.py:18-30"
    assert gerar.formatar(codigo.simbolo("Servidor.LIMITE")) == "Servidor.py:2"


def test_referencia_que_nao_existe_e_erro(codigo):
    """Marcador ou nome inexistente, ou #c[...] que não é citação: problema, não passa calado."""
    fonte = ("Veja #c[5a] e #c[4a] e #c[9z], #c[Cliente.sumido], #c[Foo] e `#c[9z]` em código.\n"
             "// um comentário com #c[8y] não cita\n"
             "```\n#c[7x] em bloco de código não cita\n```\n"
             "#link(\"https://exemplo.org\") e #trecho[6w]\n")
    _, _, problemas = gerar.esperado(codigo, gerar.percorrer(fonte))
    texto = "\n".join(problemas)
    assert "[9z] não existe" in texto
    assert "não existe sumido em Cliente.py" in texto
    assert "#c[Foo] não é um marcador" in texto
    assert texto.count("[9z]") == 1  # o que está entre crases não conta
    assert "8y" not in texto and "7x" not in texto  # nem em comentário ou bloco de código
    assert "[6w] não existe" in texto  # o "//" do endereço não esconde o resto da linha
    # Marcadores obrigatórios que o texto não cita também são problema.
    assert "o marcador [5b] sumiu do código" in texto


def test_ponto_e_virgula_logo_depois_de_uma_citacao_e_erro(codigo):
    """Um ";" colado em #c[...] sumiria do PDF (o typst o toma como fim do comando): é problema."""
    _, _, problemas = gerar.esperado(codigo, gerar.percorrer("Veja #c[5a]; e #c[4a]\\; ok.\n"))
    assert [p for p in problemas if "some no PDF" in p] == [
        "relatorio.typ linha 1: o \";\" logo depois de #c[5a] some no PDF (o typst o lê como fim "
        "do comando): escreva \\;"]


# ------------------------------------------------------------ o lançador da demo

def test_demo_abre_os_cinco_consoles_e_responde_as_perguntas_dos_servidores():
    """demo.py: servidores sem argumentos (as perguntas da seção 5a aparecem no vídeo), o 10099
    lento (--atraso-replicacao), as respostas de cada um, e os dois clientes."""
    from Servidor import Servidor
    consoles = demo.consoles(atraso=30)
    assert [argumentos[0] for _, argumentos, _ in consoles] == \
        ["Servidor.py"] * 3 + ["Cliente.py"] * 2
    configuracoes = [Servidor.ler_argumentos(argumentos[1:]) for _, argumentos, _ in consoles[:3]]
    # Sem IP nem porta (o servidor pergunta); só o 10099 com atraso.
    assert [(config, opcoes["atraso_replicacao"]) for config, opcoes in configuracoes] == \
        [(None, 0.0), (None, 0.0), (None, 30.0)]
    assert [respostas for _, _, respostas in consoles[:3]] == [
        ["127.0.0.1", "10097", "127.0.0.1", "10097"],
        ["127.0.0.1", "10098", "127.0.0.1", "10097"],
        ["127.0.0.1", "10099", "127.0.0.1", "10097"]]
    assert consoles[3][1:] == consoles[4][1:] == (["Cliente.py"], [])
    roteiro = demo.roteiro(30)
    assert "--atraso-replicacao 30" in roteiro and "TRY_OTHER_SERVER_OR_LATER" in roteiro


@pytest.mark.skipif(os.name != "posix" or shutil.which("tmux") is None,
                    reason="a demonstração com tmux é só do Linux/macOS com tmux instalado")
def test_demo_no_tmux_digita_cada_resposta_depois_da_pergunta(monkeypatch):
    """[5a] No tmux, cada servidor mostra as quatro perguntas com a resposta digitada, e sobe."""
    pasta_tmux = tempfile.mkdtemp(prefix="tmux")   # um servidor tmux só deste teste (caminho curto)
    monkeypatch.setenv("TMUX_TMPDIR", pasta_tmux)
    monkeypatch.delenv("TMUX", raising=False)
    monkeypatch.setattr(demo, "PORTAS", tuple(porta_livre() for _ in range(3)))
    try:
        paineis = demo.abrir_tmux(30, sys.executable, "teste")
        esperar(lambda: all(aceita_conexao(p) for p in demo.PORTAS),
                motivo="os três servidores da demonstração abrirem as portas")
        for painel, (_, argumentos, respostas) in zip(paineis, demo.consoles(30)[:3]):
            tela = [l for l in demo.tmux("capture-pane", "-p", "-t", painel).split("\n") if l]
            assert tela[0].endswith(" ".join(argumentos))
            assert tela[1:5] == ["IP [127.0.0.1]: " + respostas[0],
                                 "Porta [10097]: " + respostas[1],
                                 "IP do líder [127.0.0.1]: " + respostas[2],
                                 "Porta do líder [10097]: " + respostas[3]]
    finally:
        subprocess.run(["tmux", "kill-server"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        shutil.rmtree(pasta_tmux, ignore_errors=True)


def test_roteiro_do_video_cabe_em_quatro_minutos_e_meio():
    """[9 II] No ritmo de uma pessoa (3 a 4 teclas por segundo, 2 s para ler cada pergunta), o
    roteiro do vídeo, com as rodadas de PUT e GETs que ele permite até o TRY_OTHER, cabe em
    4 min 30 s, com o seguidor lento segurando cada PUT por 30 s."""
    for teclas in (3.0, 3.5, 4.0):
        segundos = demo.tempo_do_video(demo.RODADAS, teclas_por_segundo=teclas)
        assert segundos <= 270, (teclas, demo.minutos(segundos))
    assert demo.gets_por_rodada(teclas_por_segundo=3.0) >= 6
    # A chance de cada rodada: a conta da SPEC (seção 6), 26% de falha com 5 GETs, 8% com 8.
    assert [round(1 - demo.chance_de_try(gets), 3) for gets in (5, 8, 10, 12)] == \
        [0.259, 0.078, 0.035, 0.015]
    # A receita tem de mostrar o TRY_OTHER em 95% das gravações (SPEC, seção 6).
    assert 1 - (1 - demo.chance_de_try(demo.gets_por_rodada(teclas_por_segundo=3.0))) \
        ** demo.RODADAS >= 0.95
    roteiro = demo.roteiro(demo.ATRASO)
    assert demo.minutos(demo.tempo_do_video(demo.RODADAS)) in roteiro


def test_demo_no_windows_usa_start_e_cmd():
    """No Windows, cada console é um "start" de cmd /k, que fica aberto; python entre aspas."""
    comando = demo.comando_windows("Servidor 1 - líder 10097",
                                   ["Servidor.py", "127.0.0.1", "10097", "127.0.0.1", "10097"],
                                   r"C:\Program Files\Python38\python.exe")
    assert comando == ('start "Servidor 1 - lider 10097" cmd /k ""C:\\Program Files\\Python38\\'
                       'python.exe" Servidor.py 127.0.0.1 10097 127.0.0.1 10097"')


# ------------------------------------------------------- o vídeo e as dependências

def test_secao_do_video_diz_se_e_gravacao_da_tela_ou_desenhado(tmp_path):
    """[9 II] O modelo fala de uma gravação da tela; com --video-desenhado, a seção II diz que o
    vídeo foi desenhado de uma execução real, não capturado da tela (sem nomear o script)."""
    def secao_ii(texto):
        return texto[texto.index("II. Vídeo"):texto.index("III. O que o vídeo mostra")]
    modelo = secao_ii(gerar.texto_do_pdf(PDF))
    assert "gravação da tela" in modelo and "não é uma captura de tela" not in modelo
    pdf = str(tmp_path / "desenhado.pdf")
    resultado = rodar(*DADOS + ["--video-desenhado", "--saida", pdf])
    assert resultado.returncode == 0, resultado.stderr
    desenhado = secao_ii(gerar.texto_do_pdf(pdf))
    assert "não é uma captura de tela" in desenhado and "gravação da tela" not in desenhado
    assert [nome for nome in FORA_DO_ZIP if nome in texto_corrido(pdf)] == []


# Módulo importado -> pacote do PyPI que o traz.
PACOTES = {"PIL": "pillow", "imageio_ffmpeg": "imageio-ffmpeg", "typst": "typst",
           "pypdf": "pypdf", "pytest": "pytest"}
FORA = {".git", ".venv", "_build", "__pycache__", ".pytest_cache", "_saida"}


def arquivos_do_projeto(final):
    for pasta, subpastas, arquivos in os.walk(RAIZ):
        subpastas[:] = [s for s in subpastas if s not in FORA]
        for arquivo in arquivos:
            if arquivo.endswith(final):
                yield os.path.join(pasta, arquivo)


def pacotes_instalados_pelo_readme():
    """Os pacotes dos requisitos.txt que o README manda instalar (com os -r de dentro deles)."""
    with open(os.path.join(RAIZ, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    pendentes = [os.path.join(RAIZ, caminho) for caminho in
                 re.findall(r"pip install -r (\S+requisitos\.txt)", readme)]
    pacotes = set()
    while pendentes:
        caminho = os.path.normpath(pendentes.pop())
        assert os.path.exists(caminho), "o README manda instalar %s, que não existe" % caminho
        with open(caminho, encoding="utf-8") as f:
            for linha in f.read().splitlines():
                linha = linha.split("#")[0].strip()
                if linha.startswith("-r "):
                    pendentes.append(os.path.join(os.path.dirname(caminho), linha[3:].strip()))
                elif linha:
                    pacotes.add(re.split(r"[<>=!~;\[ ]", linha)[0].lower())
    return pacotes


def test_todo_script_roda_com_o_que_o_readme_instala():
    """Todo pacote de fora da biblioteca padrão que um script do repositório importa está num
    requisitos.txt que o README manda instalar."""
    locais = {os.path.basename(c)[:-3] for c in arquivos_do_projeto(".py")}
    padrao = getattr(sys, "stdlib_module_names", None)   # Python 3.10+
    instalados = pacotes_instalados_pelo_readme()
    faltando = []
    for caminho in arquivos_do_projeto(".py"):
        with open(caminho, encoding="utf-8") as f:
            arvore = gerar.ast.parse(f.read())
        for no in gerar.ast.walk(arvore):
            if isinstance(no, gerar.ast.Import):
                modulos = [nome.name for nome in no.names]
            elif isinstance(no, gerar.ast.ImportFrom) and no.level == 0:
                modulos = [no.module]
            else:
                continue
            for modulo in (m.split(".")[0] for m in modulos):
                if modulo in locais or (padrao is not None and modulo in padrao):
                    continue
                if modulo not in PACOTES:
                    assert padrao is None, "%s importa %s: ponha em PACOTES e num requisitos.txt" \
                        % (os.path.relpath(caminho, RAIZ), modulo)
                elif PACOTES[modulo] not in instalados:
                    faltando.append("%s: %s" % (os.path.relpath(caminho, RAIZ), modulo))
    assert faltando == []
