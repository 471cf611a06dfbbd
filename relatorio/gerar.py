"""Gera o relatório do trabalho (PDF), o ZIP de entrega, e confere as citações de linhas.

    python relatorio/gerar.py                  # relatorio/RA.pdf (nome, RA e vídeo a preencher)
    python relatorio/gerar.py --nome "Ana Souza" --ra 123456 --video https://...
                                               # relatorio/_build/123456.pdf
    python relatorio/gerar.py --nome ... --ra 123456 --video ... --zip
                                               # e relatorio/_build/123456.zip, a entrega
    python relatorio/gerar.py --verificar      # o PDF commitado ainda bate com o código?

O texto fica em relatorio.md. Ali nenhuma linha é digitada: uma citação é uma referência
  [5c]                      a um marcador (comentário "# [5c] ..." no código; todas as ocorrências)
  [Cliente.esperar_resposta] a um nome do código (método, classe aninhada ou constante)
e vira, na hora de gerar, "[5c] Servidor.py:239-253". O trecho de um marcador vai da linha do
comentário até o fim (ast end_lineno) do primeiro comando que começa depois dela, em qualquer
nível (acima de um def, é a função inteira). Também há {{trecho 5f}} (o código citado, com os
números das linhas) e {{nome}}, {{ra}}, {{video}}. Dentro de `crases` nada é substituído.

Gerar o PDF pede markdown e WeasyPrint; --verificar e --zip pedem só pypdf (e nada mais).
"""

import argparse
import ast
import collections
import difflib
import html
import io
import os
import re
import sys
import tokenize
import unicodedata
import zipfile

PASTA = os.path.dirname(os.path.abspath(__file__))
RAIZ = os.path.dirname(PASTA)
FONTES = ("Servidor.py", "Cliente.py", "Mensagem.py")
TEXTO = os.path.join(PASTA, "relatorio.md")
PDF_PADRAO = os.path.join(PASTA, "RA.pdf")
CONSTRUCAO = os.path.join(PASTA, "_build")
# Os marcadores que o enunciado pede: cada um tem de existir no código e ser citado no relatório.
OBRIGATORIOS = ("4a", "4b", "4c", "5a", "5b", "5c", "5d", "5e", "5f", "threads")

# Um comentário de marcador: "# [5c] ..." (o marcador logo no começo do comentário).
COMENTARIO_MARCADOR = re.compile(r"#\s*\[([0-9a-z][0-9a-z-]*)\]")
# No relatorio.md, em uma passada: código (cercado ou entre crases) e comentários HTML, que
# ficam como estão,
# diretivas {{...}} e referências [5c] / [Classe.nome] (não seguidas de "(" ou "[", que seriam
# link do Markdown; definições de link "[x]: url" não são usadas no relatório).
PADRAO_MD = re.compile(
    r"(?P<cercado>^(?P<cerca>```|~~~).*?^(?P=cerca)[ \t]*$)|(?P<comentario><!--.*?-->)"
    r"|(?P<crases>(?P<crase>`+).+?(?P=crase))"
    r"|\{\{\s*(?P<diretiva>nome|ra|video|trecho\s+[^}\s]+)\s*\}\}"
    r"|\[(?P<ref>[0-9a-z][0-9a-z-]*|[A-Z][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+)\](?![(\[])",
    re.M | re.S)
# Uma citação como sai no PDF: "[5c] Servidor.py:239-253" ou "Cliente.py:143-151, 160-170".
CITACAO_PDF = re.compile(
    r"(?:\[([0-9a-z][0-9a-z-]*)\]\s*)?((?:Servidor|Cliente|Mensagem)\.py:\s*\d+(?:\s*-\s*\d+)?"
    r"(?:\s*,\s*\d+(?:\s*-\s*\d+)?)*(?:\s*;\s*(?:Servidor|Cliente|Mensagem)\.py:\s*\d+"
    r"(?:\s*-\s*\d+)?(?:\s*,\s*\d+(?:\s*-\s*\d+)?)*)*)")
FALTA = "preencher com --"


class Falha(Exception):
    """Algo no relatório ou no código impede gerar ou verificar; a mensagem diz o quê."""


# --------------------------------------------------------------- o código

class Codigo:
    """Os três arquivos-fonte, lidos uma vez: marcadores e nomes resolvidos para linhas."""

    def __init__(self, raiz=RAIZ):
        self.raiz = raiz
        self.linhas = {}
        self.arvores = {}
        self.marcadores = collections.OrderedDict()   # marcador -> [(arquivo, início, fim)]
        for arquivo in FONTES:
            with open(os.path.join(raiz, arquivo), encoding="utf-8") as f:
                texto = f.read()
            self.linhas[arquivo] = texto.splitlines()
            try:
                self.arvores[arquivo] = ast.parse(texto, arquivo)
            except SyntaxError as erro:
                raise Falha("%s:%s: o código não compila (%s)" % (arquivo, erro.lineno, erro.msg))
            comandos = [(no.lineno, -no.end_lineno) for no in ast.walk(self.arvores[arquivo])
                        if isinstance(no, ast.stmt)]
            comandos.sort()
            for linha, marcador in Codigo.comentarios(texto):
                # O primeiro comando que começa depois do comentário (empate: o mais externo).
                seguinte = next(((ini, -neg) for ini, neg in comandos if ini > linha), None)
                if seguinte is None:
                    raise Falha("%s:%d: o marcador [%s] não tem código depois dele"
                                % (arquivo, linha, marcador))
                self.marcadores.setdefault(marcador, []).append((arquivo, linha, seguinte[1]))

    @staticmethod
    def comentarios(texto):
        """(linha, marcador) de cada comentário que começa com "# [marcador]"."""
        for token in tokenize.generate_tokens(io.StringIO(texto).readline):
            if token.type == tokenize.COMMENT:
                achado = COMENTARIO_MARCADOR.match(token.string)
                if achado:
                    yield token.start[0], achado.group(1)

    def marcador(self, nome):
        if nome not in self.marcadores:
            raise Falha("o marcador [%s] não existe em nenhum comentário de %s"
                        % (nome, ", ".join(FONTES)))
        return self.marcadores[nome]

    def simbolo(self, nome):
        """[Classe.metodo], [Classe.Aninhada.metodo], [Classe.CONSTANTE] ou [Arquivo.funcao]."""
        partes = nome.split(".")
        arquivo = partes[0] + ".py"
        if arquivo not in self.arvores:
            raise Falha("[%s]: %s não é um dos arquivos do trabalho" % (nome, arquivo))
        modulo = self.arvores[arquivo]
        classe = [n for n in modulo.body if isinstance(n, ast.ClassDef) and n.name == partes[0]]
        # Primeiro dentro da classe de mesmo nome do arquivo; senão, no nível do módulo (main).
        for corpo in ([classe[0].body] if classe else []) + [modulo.body]:
            no = Codigo.procurar(corpo, partes[1:])
            if no is not None:
                inicio = min([no.lineno] + [d.lineno for d in getattr(no, "decorator_list", [])])
                return [(arquivo, inicio, no.end_lineno)]
        raise Falha("[%s]: não existe %s em %s" % (nome, ".".join(partes[1:]), arquivo))

    @staticmethod
    def procurar(corpo, partes):
        for no in corpo:
            if isinstance(no, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                nomes = [no.name]
            elif isinstance(no, ast.Assign):
                nomes = [alvo.id for alvo in no.targets if isinstance(alvo, ast.Name)]
            elif isinstance(no, ast.AnnAssign) and isinstance(no.target, ast.Name):
                nomes = [no.target.id]
            else:
                continue
            if partes[0] in nomes:
                if len(partes) == 1:
                    return no
                if isinstance(no, ast.ClassDef):
                    return Codigo.procurar(no.body, partes[1:])
        return None

    def resolver(self, referencia):
        """Referência do relatorio.md -> lista de (arquivo, início, fim)."""
        if "." in referencia:
            return self.simbolo(referencia)
        return self.marcador(referencia)

    def trecho(self, arquivo, inicio, fim):
        return self.linhas[arquivo][inicio - 1:fim]


def formatar(trechos):
    """[(arquivo, início, fim), ...] -> "Servidor.py:271-273, 406-421" (arquivo:faixas)."""
    por_arquivo = collections.OrderedDict()
    for arquivo, inicio, fim in trechos:
        por_arquivo.setdefault(arquivo, []).append(
            "%d" % inicio if inicio == fim else "%d-%d" % (inicio, fim))
    return "; ".join("%s:%s" % (arquivo, ", ".join(faixas))
                     for arquivo, faixas in por_arquivo.items())


def texto_citacao(referencia, trechos):
    """Como a citação aparece no PDF: com o marcador na frente quando é um marcador."""
    citacao = formatar(trechos)
    return citacao if "." in referencia else "[%s] %s" % (referencia, citacao)


# ------------------------------------------------------- o relatorio.md

Item = collections.namedtuple("Item", "tipo valor linha_md")   # tipo: ref | trecho | campo


def percorrer(md):
    """As referências e diretivas do relatorio.md, em ordem, fora de código; e os pedaços.

    Devolve a lista de pedaços: str (texto que fica como está) ou Item (a substituir).
    """
    pedacos = []
    fim = 0
    for achado in PADRAO_MD.finditer(md):
        if achado.group("cercado") or achado.group("crases") or achado.group("comentario"):
            continue
        pedacos.append(md[fim:achado.start()])
        linha = md.count("\n", 0, achado.start()) + 1
        if achado.group("ref"):
            pedacos.append(Item("ref", achado.group("ref"), linha))
        elif achado.group("diretiva").startswith("trecho"):
            pedacos.append(Item("trecho", achado.group("diretiva").split()[1], linha))
        else:
            pedacos.append(Item("campo", achado.group("diretiva"), linha))
        fim = achado.end()
    pedacos.append(md[fim:])
    return pedacos


def ler_texto(caminho=TEXTO):
    with open(caminho, encoding="utf-8") as f:
        return f.read()


def esperado(codigo, pedacos):
    """O que o PDF tem de mostrar hoje: [(marcador ou None, citação, linha do .md, referência)],
    os trechos, e os problemas (referência que não resolve, marcador obrigatório faltando)."""
    citacoes = []
    trechos = []
    problemas = []
    for item in pedacos:
        if not isinstance(item, Item) or item.tipo == "campo":
            continue
        marca = None if "." in item.valor else item.valor
        try:
            resolvidos = codigo.resolver(item.valor)
        except Falha as erro:
            problemas.append("relatorio.md linha %d: %s" % (item.linha_md, erro))
            # Fica o lugar (citação None), para as outras continuarem alinhadas com o PDF.
            citacoes.append((marca, None, item.linha_md, item.valor))
            continue
        citacoes.append((marca, formatar(resolvidos), item.linha_md, item.valor))
        if item.tipo == "trecho":
            trechos.append((item, resolvidos))
    for pedaco in pedacos:
        if isinstance(pedaco, str):
            # Algo entre colchetes que não virou referência nem link: provável erro de digitação.
            for resto in re.finditer(r"\[([^\]\s]+)\](?![(\[])", PADRAO_MD.sub("", pedaco)):
                problemas.append("relatorio.md: %s parece uma citação, mas não é um marcador "
                                 "([5c]) nem um nome do código ([Cliente.metodo])" % resto.group(0))
    citados = {item.valor for item in pedacos if isinstance(item, Item) and item.tipo != "campo"}
    for marcador in OBRIGATORIOS:
        if marcador not in codigo.marcadores:
            problemas.append("o marcador [%s] sumiu do código (o enunciado pede um comentário "
                             "\"# [%s] ...\" no lugar da funcionalidade)" % (marcador, marcador))
        elif marcador not in citados:
            problemas.append("o relatório não cita o marcador [%s] (escreva [%s] no relatorio.md)"
                             % (marcador, marcador))
    return citacoes, trechos, problemas


# ----------------------------------------------------------- verificar

def texto_do_pdf(caminho):
    try:
        from pypdf import PdfReader
    except ImportError:
        raise Falha("--verificar precisa do pacote pypdf: python -m pip install pypdf") from None
    if not os.path.exists(caminho):
        raise Falha("o PDF %s não existe; gere com: python relatorio/gerar.py" % caminho)
    leitor = PdfReader(caminho)
    paginas = [pagina.extract_text() or "" for pagina in leitor.pages]
    # NFKC: ligaduras viram letras e o espaço fixo vira espaço comum.
    return unicodedata.normalize("NFKC", "\n".join(paginas))


def sem_espacos(texto):
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", texto))


def verificar(caminho_pdf=PDF_PADRAO, raiz=RAIZ, caminho_md=TEXTO):
    """Lista de problemas (vazia se o PDF bate com o código de hoje)."""
    codigo = Codigo(raiz)
    pedacos = percorrer(ler_texto(caminho_md))
    citacoes, trechos, problemas = esperado(codigo, pedacos)
    texto = texto_do_pdf(caminho_pdf)
    no_pdf = [(achado.group(1), re.sub(r"\s+", "", achado.group(2))
               .replace(",", ", ").replace(";", "; "))
              for achado in CITACAO_PDF.finditer(texto)]
    deveria = [(marca, citacao or "?") for marca, citacao, _, _ in citacoes]
    nome_pdf = os.path.relpath(caminho_pdf)
    if len(no_pdf) == len(deveria):
        for (marca, citacao, linha, referencia), achado in zip(citacoes, no_pdf):
            if citacao is not None and achado != (marca, citacao):
                problemas.append(
                    "%s: a citação [%s] diz %s, mas o código de hoje dá %s (relatorio.md linha %d)"
                    % (nome_pdf, referencia, achado[1], citacao, linha))
    else:
        diferenca = difflib.unified_diff(
            [mostrar(c) for c in no_pdf], [mostrar(c) for c in deveria],
            "no PDF", "gerado hoje", lineterm="", n=1)
        problemas.append("%s tem %d citações; o relatorio.md com o código de hoje dá %d:\n    %s"
                         % (nome_pdf, len(no_pdf), len(deveria),
                            "\n    ".join(list(diferenca)[2:])))
    pdf_sem_espacos = sem_espacos(texto)
    for item, resolvidos in trechos:
        for arquivo, inicio, fim in resolvidos:
            linhas = codigo.trecho(arquivo, inicio, fim)
            corrido = sem_espacos("".join("%d%s" % (inicio + i, linha)
                                          for i, linha in enumerate(linhas)))
            if corrido not in pdf_sem_espacos:
                problemas.append("%s: o código mostrado em {{trecho %s}} (%s:%d-%d) não é mais "
                                 "o do arquivo (relatorio.md linha %d)"
                                 % (nome_pdf, item.valor, arquivo, inicio, fim, item.linha_md))
    return problemas


def mostrar(citacao):
    marca, texto = citacao
    return "[%s] %s" % (marca, texto) if marca else texto


# --------------------------------------------------------------- gerar

def campos(nome, ra, video):
    """HTML dos campos das seções I e II; o que faltar fica marcado para preencher."""
    def falta(opcao):
        return '<span class="falta">(%s%s)</span>' % (FALTA, opcao)
    return {
        "nome": html.escape(nome) if nome else falta("nome"),
        "ra": html.escape(ra) if ra else falta("ra"),
        "video": ('<a href="%s">%s</a>' % (html.escape(video, quote=True), html.escape(video))
                  if video else falta("video")),
    }


def html_trecho(codigo, referencia, resolvidos):
    partes = []
    for arquivo, inicio, fim in resolvidos:
        linhas = codigo.trecho(arquivo, inicio, fim)
        largura = len(str(fim))
        corpo = "\n".join('<span class="ln">%*d</span>  %s' % (largura, inicio + i, html.escape(l))
                          for i, l in enumerate(linhas))
        partes.append("<pre>%s</pre>" % corpo)
    return ('<div class="trecho"><div class="trecho-titulo">%s</div>%s</div>'
            % (html_citacao(referencia, resolvidos), "".join(partes)))


def html_citacao(referencia, resolvidos):
    citacao = html.escape(formatar(resolvidos))
    if "." in referencia:
        return '<span class="cit"><code>%s</code></span>' % citacao
    return ('<span class="cit"><span class="marca">[%s]</span>\u00a0<code>%s</code></span>'
            % (html.escape(referencia), citacao))


def montar_html(codigo, md, nome, ra, video):
    """relatorio.md -> HTML completo. Substituições viram fichas que o Markdown não toca."""
    import markdown
    valores = campos(nome, ra, video)
    fichas = {}
    saida = []
    for item in percorrer(md):
        if not isinstance(item, Item):
            saida.append(item)
            continue
        if item.tipo == "campo":
            conteudo = valores[item.valor]
        else:
            resolvidos = codigo.resolver(item.valor)
            conteudo = (html_trecho(codigo, item.valor, resolvidos) if item.tipo == "trecho"
                        else html_citacao(item.valor, resolvidos))
        ficha = "FICHA%dFICHA" % len(fichas)
        fichas[ficha] = conteudo
        saida.append(ficha)
    corpo = markdown.markdown("".join(saida), extensions=["fenced_code", "tables", "sane_lists"],
                              output_format="html")
    corpo = figuras(corpo)
    for ficha, conteudo in fichas.items():
        corpo = corpo.replace("<p>%s</p>" % ficha, conteudo).replace(ficha, conteudo)
    titulo = re.search(r"<h1>(.*?)</h1>", corpo)
    return MODELO % {"titulo": titulo.group(1) if titulo else "Relatório",
                     "autor": html.escape(nome or ""), "estilo": ESTILO, "corpo": corpo}


def figuras(corpo):
    """Imagem sozinha num parágrafo vira <figure> numerada, com o texto alternativo de legenda."""
    contador = [0]

    def figura(achado):
        contador[0] += 1
        atributos, legenda = achado.group(1), achado.group(2)
        return ('<figure><img %s/><figcaption><b>Figura %d.</b> %s</figcaption></figure>'
                % (atributos, contador[0], legenda))
    return re.sub(r'<p><img ((?:[^>]*?\s)?alt="([^"]*)"[^>]*?)\s*/?></p>', figura, corpo)


def gerar_pdf(saida, nome=None, ra=None, video=None):
    try:
        from weasyprint import HTML
    except ImportError:
        raise Falha("gerar o PDF precisa de markdown e weasyprint: "
                    "python -m pip install markdown weasyprint") from None
    codigo = Codigo()
    md = ler_texto()
    _, _, problemas = esperado(codigo, percorrer(md))
    if problemas:
        raise Falha("\n".join(problemas))
    documento = montar_html(codigo, md, nome, ra, video)
    os.makedirs(os.path.dirname(saida), exist_ok=True)
    HTML(string=documento, base_url=PASTA).write_pdf(saida)


def fazer_zip(pdf, ra, destino):
    """O ZIP de entrega: exatamente Servidor.py, Cliente.py, Mensagem.py e [RA].pdf."""
    os.makedirs(destino, exist_ok=True)
    caminho = os.path.join(destino, "%s.zip" % ra)
    temporario = caminho + ".tmp"
    with zipfile.ZipFile(temporario, "w", zipfile.ZIP_DEFLATED) as arquivo_zip:
        for fonte in FONTES:
            arquivo_zip.write(os.path.join(RAIZ, fonte), fonte)
        arquivo_zip.write(pdf, "%s.pdf" % ra)
    os.replace(temporario, caminho)
    return caminho


def avisos_de_entrega(pdf, ra):
    """Campos ainda por preencher, ou um PDF que não traz o RA do ZIP."""
    texto = texto_do_pdf(pdf)
    avisos = []
    faltando = sorted(set(re.findall(re.escape(FALTA) + r"(\w+)", texto)))
    if faltando:
        avisos.append("o PDF ainda tem campos a preencher: %s"
                      % ", ".join("--" + f for f in faltando))
    if ra not in texto:
        avisos.append("o PDF não traz o RA %s" % ra)
    return avisos


# ------------------------------------------------------------ linha de comando

def principal(argumentos):
    parser = argparse.ArgumentParser(
        description="Gera o relatório (PDF) e o ZIP de entrega; --verificar confere as citações.")
    parser.add_argument("--nome", help="nome do aluno (seção I)")
    parser.add_argument("--ra", help="RA do aluno (seção I; nome do PDF no ZIP)")
    parser.add_argument("--video", help="link do vídeo (seção II)")
    parser.add_argument("--saida", help="onde gravar o PDF (padrão: relatorio/RA.pdf, ou "
                                        "relatorio/_build/[RA].pdf com --ra)")
    parser.add_argument("--zip", action="store_true",
                        help="monta relatorio/_build/[RA].zip com os três .py e [RA].pdf")
    parser.add_argument("--pdf", help="com --verificar ou --zip: usa este PDF já gerado "
                                      "(padrão do --verificar: relatorio/RA.pdf)")
    parser.add_argument("--destino", default=CONSTRUCAO, help="pasta do ZIP")
    parser.add_argument("--verificar", action="store_true",
                        help="só confere se as citações do PDF batem com o código de hoje")
    opcoes = parser.parse_args(argumentos)
    if opcoes.ra is not None and not re.match(r"^[A-Za-z0-9._-]+$", opcoes.ra):
        parser.error("--ra: use só letras, dígitos, ponto, hífen ou sublinhado")
    if opcoes.zip and not opcoes.ra:
        parser.error("--zip precisa de --ra (o PDF no ZIP se chama [RA].pdf)")

    if opcoes.verificar:
        pdf = opcoes.pdf or PDF_PADRAO
        problemas = verificar(pdf)
        if problemas:
            print("O relatório não bate com o código (regenere: python relatorio/gerar.py):",
                  file=sys.stderr)
            for problema in problemas:
                print("  - " + problema, file=sys.stderr)
            return 1
        print("%s: as citações batem com o código de hoje." % os.path.relpath(pdf))
        return 0

    pdf = opcoes.pdf
    if pdf is None:
        pdf = opcoes.saida or (os.path.join(CONSTRUCAO, "%s.pdf" % opcoes.ra) if opcoes.ra
                               else PDF_PADRAO)
        gerar_pdf(pdf, opcoes.nome, opcoes.ra, opcoes.video)
        print("PDF gerado: %s" % os.path.relpath(pdf))
    problemas = verificar(pdf)
    if problemas:
        print("O PDF %s não bate com o código:" % os.path.relpath(pdf), file=sys.stderr)
        for problema in problemas:
            print("  - " + problema, file=sys.stderr)
        return 1
    if opcoes.zip:
        for aviso in avisos_de_entrega(pdf, opcoes.ra):
            print("AVISO: " + aviso, file=sys.stderr)
        caminho = fazer_zip(pdf, opcoes.ra, opcoes.destino)
        print("ZIP de entrega: %s" % os.path.relpath(caminho))
    return 0


def main():
    try:
        return principal(sys.argv[1:])
    except Falha as erro:
        print("ERRO: %s" % erro, file=sys.stderr)
        return 2


# --------------------------------------------------------------- aparência

MODELO = """<!DOCTYPE html>
<html lang="pt-BR"><head><meta charset="utf-8">
<title>%(titulo)s</title><meta name="author" content="%(autor)s">
<meta name="generator" content="relatorio/gerar.py">
<style>%(estilo)s</style></head>
<body>%(corpo)s</body></html>
"""

ESTILO = """
@page {
  size: A4; margin: 20mm 18mm 20mm 18mm;
  @bottom-center { content: "Projeto de Programação – KV Store  ·  " counter(page) " / "
                            counter(pages);
                   font: 8.5pt "Liberation Sans", "DejaVu Sans", sans-serif; color: #777; }
}
@page :first { @bottom-center { content: counter(page) " / " counter(pages); } }
html { font: 10.5pt/1.42 "Liberation Serif", "Times New Roman", "DejaVu Serif", serif;
       color: #1b1b1b; }
body { margin: 0; hyphens: manual; }
p { text-align: justify; }
li { text-align: left; margin: 1.5pt 0; }
h1, h2, h3 { font-family: "Liberation Sans", "DejaVu Sans", sans-serif; color: #14365d;
             break-after: avoid; line-height: 1.2; }
h1 { font-size: 19pt; margin: 0 0 2pt 0; }
h1 + p { margin-top: 0; color: #444; font-size: 11pt; }
h2 { font-size: 13.5pt; margin: 16pt 0 5pt 0; padding-bottom: 2pt;
     border-bottom: 1.2pt solid #14365d; }
h3 { font-size: 11pt; margin: 11pt 0 3pt 0; }
h2 + h3 { margin-top: 6pt; }
a { color: #1a5296; text-decoration: none; word-break: break-all; }
code { font-family: "DejaVu Sans Mono", "Liberation Mono", monospace; font-size: 8.6pt;
       font-variant-ligatures: none; background: #f1f3f6; padding: 0 1.5pt; border-radius: 2pt; }
.cit { white-space: nowrap; }
.cit code { background: #e6eef8; color: #0d3b73; }
.marca { font-family: "DejaVu Sans Mono", monospace; font-size: 7.6pt; color: #6b7c93; }
.falta { background: #fff2a8; color: #7a5a00; font: 9.5pt "Liberation Sans", "DejaVu Sans",
         sans-serif; padding: 0 2pt; white-space: nowrap; }
pre { font: 7.8pt/1.35 "DejaVu Sans Mono", "Liberation Mono", monospace; background: #f4f6f9;
      border: 0.6pt solid #d5dce5; border-radius: 3pt; padding: 5pt 7pt; white-space: pre-wrap;
      break-inside: avoid; font-variant-ligatures: none; }
pre code { background: none; padding: 0; font-size: inherit; }
.trecho { margin: 5pt 0 8pt 0; break-inside: avoid; border: 0.6pt solid #c9d3df;
          border-radius: 3pt; }
.trecho-titulo { background: #e6eef8; padding: 2pt 6pt; font-size: 8.5pt;
                 border-bottom: 0.6pt solid #c9d3df; }
.trecho-titulo code { background: none; }
.trecho pre { margin: 0; padding: 4pt 6pt; font-size: 7.6pt; line-height: 1.32; border: none;
              border-radius: 0; background: #fbfcfd; }
.trecho pre + pre { border-top: 0.6pt dashed #c9d3df; }
.ln { color: #8a96a8; }
figure { margin: 8pt 0 10pt 0; break-inside: avoid; text-align: center; }
figure img { max-width: 100%; }
figcaption { font-size: 9pt; color: #333; margin-top: 3pt; text-align: left; padding: 0 4mm; }
table { border-collapse: collapse; margin: 6pt 0 9pt 0; font-size: 9.3pt; width: 100%;
        break-inside: avoid; }
th, td { border: 0.6pt solid #c9d3df; padding: 2.5pt 5pt; vertical-align: top; text-align: left; }
th { background: #e6eef8; font-family: "Liberation Sans", "DejaVu Sans", sans-serif; }
ul, ol { padding-left: 15pt; margin: 4pt 0; }
table.identificacao { width: auto; min-width: 60%; font-size: 10.5pt; }
table.identificacao th { width: 22mm; }
"""


if __name__ == "__main__":
    sys.exit(main())
