"""Gera o relatório do trabalho (PDF), o ZIP de entrega, e confere as citações de linhas.

    python relatorio/gerar.py                  # relatorio/RA.pdf, o modelo (sem nome, RA, vídeo)
    python relatorio/gerar.py --nome "Ana Souza" --ra 123456 --video https://...
                                               # relatorio/_build/123456.pdf
    python relatorio/gerar.py --nome ... --ra 123456 --video ... --zip
                                               # e relatorio/_build/123456.zip, a entrega
    python relatorio/gerar.py --verificar      # o PDF commitado ainda bate com o código?

O texto fica em relatorio.typ (Typst; a aparência em estilo.typ). Ali nenhuma linha é digitada:
uma citação é uma referência
  #c[5c]                        um marcador (comentário "# [5c] ..." no código; todas as vezes)
  #c[Cliente.esperar_resposta]  um nome do código (método, classe aninhada ou constante)
e vira, na hora de gerar, "[5c] Servidor.py:239-253". O trecho de um marcador vai da linha do
comentário até o fim (ast end_lineno) do primeiro comando que começa depois dela, em qualquer
nível (acima de um def, é a função inteira). #trecho[5f] mostra o código citado, com os números
das linhas; #campo[nome], #campo[ra] e #campo[video] vêm da linha de comando. Dentro de `crases`
e de comentários nada é citação.

Precisa de typst e pypdf (relatorio/requisitos.txt), que instalam do PyPI sem nada do sistema.
"""

import argparse
import ast
import collections
import difflib
import io
import json
import os
import re
import sys
import tokenize
import unicodedata
import zipfile

PASTA = os.path.dirname(os.path.abspath(__file__))
RAIZ = os.path.dirname(PASTA)
FONTES = ("Servidor.py", "Cliente.py", "Mensagem.py")
TEXTO = os.path.join(PASTA, "relatorio.typ")
PDF_PADRAO = os.path.join(PASTA, "RA.pdf")
CONSTRUCAO = os.path.join(PASTA, "_build")
INSTALAR = "python -m pip install -r relatorio/requisitos.txt"
# A data gravada no modelo (o PDF sem nome, RA e vídeo) é fixa: o mesmo código e o mesmo texto
# dão o mesmo PDF, byte a byte, e o git só vê mudança quando algo mudou. O PDF do aluno leva a
# data de quando foi gerado.
DATA_DO_MODELO = 1767225600   # 2026-01-01 00:00 UTC
# Os marcadores que o enunciado pede: cada um tem de existir no código e ser citado no relatório.
OBRIGATORIOS = ("4a", "4b", "4c", "5a", "5b", "5c", "5d", "5e", "5f", "threads")

# Um comentário de marcador: "# [5c] ..." (o marcador logo no começo do comentário).
COMENTARIO_MARCADOR = re.compile(r"#\s*\[([0-9a-z][0-9a-z-]*)\]")
# No relatorio.typ, em uma passada: código (cercado ou entre crases) e comentários, que ficam
# de fora, e as citações #c[...] e #trecho[...]. "//" depois de ":" é um endereço, não comentário.
PADRAO_FONTE = re.compile(
    r"(?P<cercado>^(?P<cerca>```+).*?^(?P=cerca)[ \t]*$)|(?P<crases>`[^`\n]*`)"
    r"|(?P<comentario>(?<!:)//[^\n]*|/\*.*?\*/)"
    r"|#(?P<funcao>c|trecho)\[(?P<ref>[^\]\n]*)\]",
    re.M | re.S)
# O que pode ir dentro de #c[...]: um marcador (5c) ou um nome do código (Classe.nome).
REFERENCIA = re.compile(r"^(?:[0-9a-z][0-9a-z-]*|[A-Z][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+)$")
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
        """Referência do relatorio.typ -> lista de (arquivo, início, fim)."""
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


# ------------------------------------------------------ o relatorio.typ

Item = collections.namedtuple("Item", "tipo valor linha_fonte")   # tipo: ref | trecho


def percorrer(fonte):
    """As citações do relatorio.typ, em ordem, fora de código e de comentários; e os pedaços.

    Devolve a lista de pedaços: str (texto que fica como está) ou Item (uma citação).
    """
    pedacos = []
    fim = 0
    for achado in PADRAO_FONTE.finditer(fonte):
        if achado.group("funcao") is None:
            continue
        pedacos.append(fonte[fim:achado.start()])
        linha = fonte.count("\n", 0, achado.start()) + 1
        tipo = "ref" if achado.group("funcao") == "c" else "trecho"
        pedacos.append(Item(tipo, achado.group("ref"), linha))
        fim = achado.end()
    pedacos.append(fonte[fim:])
    return pedacos


def ler_texto(caminho=TEXTO):
    with open(caminho, encoding="utf-8") as f:
        return f.read()


def esperado(codigo, pedacos):
    """O que o PDF tem de mostrar hoje: [(marcador ou None, citação, linha da fonte, referência)],
    os trechos, e os problemas (referência que não resolve, marcador obrigatório faltando)."""
    citacoes = []
    trechos = []
    problemas = []
    for item in pedacos:
        if not isinstance(item, Item):
            continue
        marca = None if "." in item.valor else item.valor
        if not REFERENCIA.match(item.valor):
            problemas.append("relatorio.typ linha %d: #c[%s] não é um marcador (#c[5c]) nem um "
                             "nome do código (#c[Cliente.metodo])" % (item.linha_fonte, item.valor))
            citacoes.append((marca, None, item.linha_fonte, item.valor))
            continue
        try:
            resolvidos = codigo.resolver(item.valor)
        except Falha as erro:
            problemas.append("relatorio.typ linha %d: %s" % (item.linha_fonte, erro))
            # Fica o lugar (citação None), para as outras continuarem alinhadas com o PDF.
            citacoes.append((marca, None, item.linha_fonte, item.valor))
            continue
        citacoes.append((marca, formatar(resolvidos), item.linha_fonte, item.valor))
        if item.tipo == "trecho":
            trechos.append((item, resolvidos))
    for anterior, seguinte in zip(pedacos, pedacos[1:]):
        if isinstance(anterior, Item) and isinstance(seguinte, str) and seguinte.startswith(";"):
            problemas.append("relatorio.typ linha %d: o \";\" logo depois de #%s[%s] some no PDF "
                             "(o typst o lê como fim do comando): escreva \\;"
                             % (anterior.linha_fonte, "c" if anterior.tipo == "ref" else "trecho",
                                anterior.valor))
    citados = {item.valor for item in pedacos if isinstance(item, Item)}
    for marcador in OBRIGATORIOS:
        if marcador not in codigo.marcadores:
            problemas.append("o marcador [%s] sumiu do código (o enunciado pede um comentário "
                             "\"# [%s] ...\" no lugar da funcionalidade)" % (marcador, marcador))
        elif marcador not in citados:
            problemas.append("o relatório não cita o marcador [%s] (escreva #c[%s] no "
                             "relatorio.typ)" % (marcador, marcador))
    return citacoes, trechos, problemas


# ----------------------------------------------------------- verificar

def texto_do_pdf(caminho):
    try:
        from pypdf import PdfReader
    except ImportError:
        raise Falha("ler o PDF precisa do pypdf: %s" % INSTALAR) from None
    if not os.path.exists(caminho):
        raise Falha("o PDF %s não existe; gere com: python relatorio/gerar.py" % caminho)
    leitor = PdfReader(caminho)
    paginas = [pagina.extract_text() or "" for pagina in leitor.pages]
    # NFKC: ligaduras viram letras e o espaço fixo vira espaço comum.
    return unicodedata.normalize("NFKC", "\n".join(paginas))


def relativo(caminho):
    """O caminho como a pessoa o reconhece (relativo à pasta atual, se possível)."""
    try:
        return os.path.relpath(caminho)
    except ValueError:   # no Windows, outra unidade (D:\ com a pasta atual em C:\)
        return caminho


def sem_espacos(texto):
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", texto))


def verificar(caminho_pdf=PDF_PADRAO, raiz=RAIZ, caminho_fonte=TEXTO):
    """Lista de problemas (vazia se o PDF bate com o código de hoje)."""
    codigo = Codigo(raiz)
    pedacos = percorrer(ler_texto(caminho_fonte))
    citacoes, trechos, problemas = esperado(codigo, pedacos)
    texto = texto_do_pdf(caminho_pdf)
    no_pdf = [(achado.group(1), re.sub(r"\s+", "", achado.group(2))
               .replace(",", ", ").replace(";", "; "))
              for achado in CITACAO_PDF.finditer(texto)]
    deveria = [(marca, citacao or "?") for marca, citacao, _, _ in citacoes]
    nome_pdf = relativo(caminho_pdf)
    if len(no_pdf) == len(deveria):
        for (marca, citacao, linha, referencia), achado in zip(citacoes, no_pdf):
            if citacao is not None and achado != (marca, citacao):
                problemas.append(
                    "%s: a citação [%s] diz %s, mas o código de hoje dá %s (relatorio.typ linha %d)"
                    % (nome_pdf, referencia, achado[1], citacao, linha))
    else:
        diferenca = difflib.unified_diff(
            [mostrar(c) for c in no_pdf], [mostrar(c) for c in deveria],
            "no PDF", "gerado hoje", lineterm="", n=1)
        problemas.append("%s tem %d citações; o relatorio.typ com o código de hoje dá %d:\n    %s"
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
                                 "o do arquivo (relatorio.typ linha %d)"
                                 % (nome_pdf, item.valor, arquivo, inicio, fim, item.linha_fonte))
    return problemas


def mostrar(citacao):
    marca, texto = citacao
    return "[%s] %s" % (marca, texto) if marca else texto


# --------------------------------------------------------------- gerar

def entradas(codigo, pedacos, nome, ra, video):
    """O que o estilo.typ recebe em sys.inputs: as citações, os trechos e os campos."""
    citacoes = {}
    trechos = {}
    for item in pedacos:
        if not isinstance(item, Item):
            continue
        resolvidos = codigo.resolver(item.valor)
        citacoes[item.valor] = formatar(resolvidos)
        if item.tipo == "trecho":
            trechos[item.valor] = [{"arquivo": arquivo, "inicio": inicio, "fim": fim,
                                    "linhas": codigo.trecho(arquivo, inicio, fim)}
                                   for arquivo, inicio, fim in resolvidos]
    dados = json.dumps({"citacoes": citacoes, "trechos": trechos}, ensure_ascii=False)
    return {"dados": dados, "nome": nome or "", "ra": ra or "", "video": video or ""}


def gerar_pdf(saida, nome=None, ra=None, video=None, raiz=RAIZ):
    try:
        import typst
    except ImportError:
        raise Falha("gerar o PDF precisa do typst: %s" % INSTALAR) from None
    codigo = Codigo(raiz)
    fonte = ler_texto()
    pedacos = percorrer(fonte)
    _, _, problemas = esperado(codigo, pedacos)
    if problemas:
        raise Falha("\n".join(problemas))
    try:
        # Só as fontes que vêm no typst: o mesmo PDF no Windows, no macOS e no Linux.
        pdf = typst.compile(TEXTO, root=PASTA, ignore_system_fonts=True,
                            sys_inputs=entradas(codigo, pedacos, nome, ra, video),
                            timestamp=None if (nome or ra or video) else DATA_DO_MODELO)
    except RuntimeError as erro:   # typst.TypstError: a mensagem já diz o arquivo e a linha
        raise Falha("o typst não compilou o relatório: %s" % erro) from None
    os.makedirs(os.path.dirname(os.path.abspath(saida)), exist_ok=True)
    temporario = saida + ".tmp"
    with open(temporario, "wb") as f:
        f.write(pdf)
    os.replace(temporario, saida)


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


def pendencias_de_entrega(pdf, nome, ra):
    """O que impede entregar este PDF: campos por preencher, ou nome e RA que não são os dados."""
    texto = texto_do_pdf(pdf)
    faltando = sorted(set(re.findall(re.escape(FALTA) + r"(\w+)", texto)))
    if faltando:
        return ("o PDF %s é o modelo, ainda com %s por preencher"
                % (relativo(pdf), ", ".join("--" + f for f in faltando)))
    corrido = sem_espacos(texto)
    for opcao, valor in (("--nome", nome), ("--ra", ra)):
        if sem_espacos(valor) not in corrido:
            return "o PDF %s não traz o %s dado (%s)" % (relativo(pdf), opcao[2:], valor)
    return None


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
    if opcoes.video is not None and not re.match(r"^https?://\S+$", opcoes.video):
        parser.error("--video: dê o link inteiro, começando com https://")
    if opcoes.zip:
        # A entrega não sai pela metade: sem nome, RA e vídeo, nada de ZIP.
        faltam = [opcao for opcao in ("--nome", "--ra", "--video")
                  if not (getattr(opcoes, opcao[2:]) or "").strip()]
        if faltam:
            print("ERRO: --zip precisa de nome, RA e link do vídeo; falta %s"
                  % " e ".join(faltam), file=sys.stderr)
            return 2

    if opcoes.verificar:
        pdf = opcoes.pdf or PDF_PADRAO
        problemas = verificar(pdf)
        if problemas:
            print("O relatório não bate com o código (regenere: python relatorio/gerar.py):",
                  file=sys.stderr)
            for problema in problemas:
                print("  - " + problema, file=sys.stderr)
            return 1
        print("%s: as citações batem com o código de hoje." % relativo(pdf))
        return 0

    pdf = opcoes.pdf
    if pdf is None:
        pdf = opcoes.saida or (os.path.join(CONSTRUCAO, "%s.pdf" % opcoes.ra) if opcoes.ra
                               else PDF_PADRAO)
        gerar_pdf(pdf, opcoes.nome, opcoes.ra, opcoes.video)
        print("PDF gerado: %s" % relativo(pdf))
    problemas = verificar(pdf)
    if problemas:
        print("O PDF %s não bate com o código:" % relativo(pdf), file=sys.stderr)
        for problema in problemas:
            print("  - " + problema, file=sys.stderr)
        return 1
    if opcoes.zip:
        pendencia = pendencias_de_entrega(pdf, opcoes.nome, opcoes.ra)
        if pendencia:
            print("ERRO: sem ZIP: %s" % pendencia, file=sys.stderr)
            return 2
        caminho = fazer_zip(pdf, opcoes.ra, opcoes.destino)
        print("ZIP de entrega: %s" % relativo(caminho))
    return 0


def main():
    try:
        return principal(sys.argv[1:])
    except Falha as erro:
        print("ERRO: %s" % erro, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
