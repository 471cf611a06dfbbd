"""Gera o relatório do trabalho (PDF), o ZIP de entrega, e confere as citações de linhas.

    python relatorio/gerar.py                  # relatorio/RA.pdf, o modelo (sem nome, RA, vídeo)
    python relatorio/gerar.py --nome "Ana Souza" --ra 123456 --video https://...
                                               # relatorio/_build/123456.pdf
    python relatorio/gerar.py --nome ... --ra 123456 --video ... --zip
                                               # e relatorio/_build/123456.zip, a entrega
    python relatorio/gerar.py --verificar      # o PDF commitado ainda bate com o código?
    python relatorio/gerar.py ... --video-desenhado   # o vídeo é o do video.py, não screencast

O texto fica em relatorio.typ (Typst; a aparência em estilo.typ). Ali nenhuma linha é digitada:
uma citação é uma referência
  #c[5c]                        um marcador (comentário "# [5c] ..." no código; todas as vezes)
  #c[Cliente.esperar_resposta]  um nome do código (método, classe aninhada ou constante)
e vira, na hora de gerar, "[5c] Servidor.py:239-253". O trecho de um marcador vai do comentário
ao fim do parágrafo que ele anota: o comando logo abaixo e os seguintes do mesmo bloco, até uma
linha em branco, o próximo marcador ou o fim do bloco; acima de um def ou class, a definição
inteira; todo comando que começa no trecho entra inteiro (a regra completa está na classe
Codigo). Gerar e --verificar falham, dizendo o marcador e as linhas, se um trecho citado para
antes do fim do que o marcador anota, ou se um marcador está fora da regra (no fim de uma linha
de código, dentro de parênteses, solto no fim de um bloco). #trecho[5f] mostra o código citado,
com os números das linhas; #campo[nome], #campo[ra] e #campo[video] vêm da linha de comando.
Dentro de `crases` e de comentários nada é citação.

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
import urllib.parse
import zipfile

PASTA = os.path.dirname(os.path.abspath(__file__))
RAIZ = os.path.dirname(PASTA)
FONTES = ("Servidor.py", "Cliente.py", "Mensagem.py")
TEXTO = os.path.join(PASTA, "relatorio.typ")
# As fontes do PDF além das que vêm no typst: a League Mono estreita das figuras (fontes/pdf).
FONTES_DO_PDF = os.path.join(PASTA, "fontes", "pdf")
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
# O que num link do vídeo só pode ser o exemplo do README, não o link do aluno.
MARCAS_DE_EXEMPLO = ("...", "\u2026", "exemplo", "example", "seu_link", "seu-link", "seulink",
                     "link_do_video", "link-do-video", "seu_video", "seu-video", "<", ">", "{", "}")
# Onde ficam os comandos de um bloco (corpo do def/if/for/while/with/try, else, finally, except).
CORPOS = ("body", "orelse", "finalbody")
DEFINICOES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


class Falha(Exception):
    """Algo no relatório ou no código impede gerar ou verificar; a mensagem diz o quê."""


# --------------------------------------------------------------- o código

def inicio_de(no):
    """A primeira linha de um comando: a do primeiro decorador, num def ou class decorado."""
    return min([no.lineno] + [d.lineno for d in getattr(no, "decorator_list", [])])


class Codigo:
    """Os três arquivos-fonte, lidos uma vez: marcadores e nomes resolvidos para linhas.

    A regra do trecho de um marcador (o que "# [5e] ..." anota):
      - o marcador fica numa linha só dele, logo acima do código (outras linhas de comentário
        podem continuar o texto; linha em branco, não), com a indentação desse código;
      - ele anota o seu parágrafo: o primeiro comando depois dele e os comandos seguintes do
        mesmo bloco, até a primeira linha em branco entre dois comandos, o próximo comentário
        marcador (entre dois comandos ou dentro do comando seguinte) ou o fim do bloco;
      - acima de um def ou class (com os decoradores), o parágrafo é a definição inteira;
      - todo comando que começa no trecho entra inteiro (até o ast end_lineno): um trecho
        nunca para no meio de um comando, e um if, with, for ou try entra com o corpo todo.
    Marcador fora dessa regra (no fim de uma linha de código, dentro de parênteses, solto
    no fim de um bloco, separado do código por linha em branco) é um problema: o trecho dele
    pararia antes do fim do que ele anota.
    """

    def __init__(self, raiz=RAIZ):
        self.raiz = raiz
        self.linhas = {}
        self.arvores = {}
        self.marcadores = collections.OrderedDict()   # marcador -> [(arquivo, início, fim)]
        self.anotados = {}     # (arquivo, linha do marcador) -> (marcador, fim, [comandos])
        self.problemas = []    # marcadores fora da regra, com arquivo e linha
        for arquivo in FONTES:
            with open(os.path.join(raiz, arquivo), encoding="utf-8") as f:
                texto = f.read()
            self.linhas[arquivo] = texto.splitlines()
            try:
                self.arvores[arquivo] = ast.parse(texto, arquivo)
            except SyntaxError as erro:
                raise Falha("%s:%s: o código não compila (%s)" % (arquivo, erro.lineno, erro.msg))
            self.ler_marcadores(arquivo, texto)

    def ler_marcadores(self, arquivo, texto):
        linhas = self.linhas[arquivo]
        # Cada comando com o bloco em que está (a lista de irmãos) e a posição nele.
        irmaos = {}
        for no in ast.walk(self.arvores[arquivo]):
            for campo in CORPOS:
                corpo = getattr(no, campo, None)
                if isinstance(corpo, list):
                    for i, filho in enumerate(corpo):
                        if isinstance(filho, ast.stmt):
                            irmaos[filho] = (corpo, i)
        # Empate na linha de início: o mais externo primeiro (o que termina mais tarde).
        comandos = sorted(irmaos, key=lambda no: (inicio_de(no), -no.end_lineno))
        marcados = Codigo.comentarios(texto)
        linhas_marcadas = {linha for linha, _, _, _ in marcados}
        for linha, coluna, marcador, dentro in marcados:
            lugar = "%s:%d" % (arquivo, linha)
            primeiro = next((no for no in comandos if inicio_de(no) > linha), None)
            if linhas[linha - 1][:coluna].strip():
                self.problema(marcador, lugar, "está no fim de uma linha de código; ponha o "
                              "comentário numa linha própria, logo acima do bloco que ele anota")
            elif dentro:
                self.problema(marcador, lugar, "está dentro de parênteses, no meio de um "
                              "comando; ponha-o acima do comando inteiro")
            elif primeiro is None:
                self.problema(marcador, lugar, "não tem código depois dele")
            elif coluna != primeiro.col_offset:
                self.problema(marcador, lugar, "não está alinhado com o comando seguinte (linha "
                              "%d, coluna %d; o marcador está na coluna %d): um marcador fica "
                              "logo acima do que anota, com a mesma indentação (no fim de um "
                              "bloco ele não anota nada)"
                              % (inicio_de(primeiro), primeiro.col_offset + 1, coluna + 1))
            elif any(not l.strip() for l in linhas[linha:inicio_de(primeiro) - 1]):
                self.problema(marcador, lugar, "está separado do código por uma linha em branco "
                              "(linhas %d-%d); ponha-o logo acima do bloco que ele anota"
                              % (linha, inicio_de(primeiro)))
            if primeiro is None:
                self.marcadores.setdefault(marcador, []).append((arquivo, linha, linha))
                continue
            paragrafo = [primeiro]
            if not isinstance(primeiro, DEFINICOES):
                corpo, i = irmaos[primeiro]
                for seguinte in corpo[i + 1:]:
                    antes = linhas[paragrafo[-1].end_lineno:inicio_de(seguinte) - 1]
                    if any(not l.strip() for l in antes):
                        break     # uma linha em branco fecha o parágrafo
                    if any(paragrafo[-1].end_lineno < outra <= seguinte.end_lineno
                           for outra in linhas_marcadas):
                        break     # o próximo marcador começa outro trecho
                    paragrafo.append(seguinte)
            fim = max(no.end_lineno for no in paragrafo)
            self.anotados[(arquivo, linha)] = (marcador, fim, paragrafo)
            self.marcadores.setdefault(marcador, []).append((arquivo, linha, fim))

    def problema(self, marcador, lugar, texto):
        self.problemas.append("%s: o marcador [%s] %s" % (lugar, marcador, texto))

    @staticmethod
    def comentarios(texto):
        """(linha, coluna, marcador, dentro de parênteses?) de cada "# [marcador] ..."."""
        achados = []
        profundidade = 0
        for token in tokenize.generate_tokens(io.StringIO(texto).readline):
            if token.type == tokenize.OP and token.string in "([{":
                profundidade += 1
            elif token.type == tokenize.OP and token.string in ")]}":
                profundidade -= 1
            elif token.type == tokenize.COMMENT:
                achado = COMENTARIO_MARCADOR.match(token.string)
                if achado:
                    achados.append((token.start[0], token.start[1], achado.group(1),
                                    profundidade > 0))
        return achados

    def corte(self, arquivo, inicio, fim):
        """Se o trecho inicio-fim começa num marcador e para antes do fim do que ele anota,
        o que fica de fora (uma frase); senão None."""
        anotado = self.anotados.get((arquivo, inicio))
        if anotado is None or fim >= anotado[1]:
            return None
        _, certo, paragrafo = anotado
        anota = "o marcador da linha %d anota as linhas %d-%d" % (inicio, inicio, certo)
        cortado = [no for no in paragrafo if inicio_de(no) <= fim < no.end_lineno]
        if cortado:
            return "%s, e o comando das linhas %d-%d fica cortado na linha %d" % (
                anota, inicio_de(cortado[0]), cortado[0].end_lineno, fim)
        return "%s, e as linhas %d-%d ficam de fora" % (anota, fim + 1, certo)

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
                inicio = inicio_de(no)
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


def faixas(citacao):
    """"Servidor.py:271-273, 406; Cliente.py:5-9" -> [(arquivo, início, fim), ...]."""
    resultado = []
    for parte in citacao.split(";"):
        arquivo, _, resto = parte.strip().partition(":")
        for faixa in resto.split(","):
            inicio, _, fim = faixa.strip().partition("-")
            resultado.append((arquivo, int(inicio), int(fim or inicio)))
    return resultado


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
    # Um marcador fora da regra (veja Codigo) teria um trecho que para antes do fim do que ele
    # anota; e nenhum trecho citado pode parar no meio do parágrafo do seu marcador.
    problemas.extend(codigo.problemas)
    for marca, citacao, linha, _ in citacoes:
        for arquivo, inicio, fim in faixas(citacao) if marca and citacao else ():
            corte = codigo.corte(arquivo, inicio, fim)
            if corte:
                problemas.append("relatorio.typ linha %d: a citação [%s] %s:%d-%d para antes do "
                                 "fim: %s" % (linha, marca, arquivo, inicio, fim, corte))
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
    # Cada trecho de marcador que o PDF cita tem de ir até o fim do que o marcador anota hoje.
    cortes = []
    for marca, citacao in no_pdf:
        for arquivo, inicio, fim in faixas(citacao) if marca else ():
            corte = codigo.corte(arquivo, inicio, fim)
            anotado = codigo.anotados.get((arquivo, inicio))
            if corte and anotado[0] == marca:
                problema = ("%s: a citação [%s] %s:%d-%d para antes do fim: %s"
                            % (nome_pdf, marca, arquivo, inicio, fim, corte))
                if problema not in cortes:
                    cortes.append(problema)
    problemas.extend(cortes)
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

def entradas(codigo, pedacos, nome, ra, video, desenhado=False):
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
    return {"dados": dados, "nome": nome or "", "ra": ra or "", "video": video or "",
            "video_desenhado": "sim" if desenhado else ""}


def gerar_pdf(saida, nome=None, ra=None, video=None, raiz=RAIZ, desenhado=False):
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
        # Só as fontes que vêm no typst e as de fontes/pdf, nunca as do sistema: o mesmo PDF
        # no Windows, no macOS e no Linux.
        pdf = typst.compile(TEXTO, root=PASTA, ignore_system_fonts=True,
                            font_paths=[FONTES_DO_PDF],
                            sys_inputs=entradas(codigo, pedacos, nome, ra, video, desenhado),
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


def problema_do_link(link):
    """Por que o link não pode ser o do vídeo do aluno (uma frase), ou None se pode.

    Um link é http(s), com um host que tem ponto e algo depois dele (caminho ou consulta):
    https://youtu.be/ID, https://www.youtube.com/watch?v=ID, https://vimeo.com/ID,
    https://drive.google.com/file/d/ID/view. O exemplo do README (https://youtu.be/...) e
    outros textos de exemplo são recusados: um PDF com eles não mostra vídeo nenhum.
    """
    texto = link.strip()
    minusculo = texto.lower()
    for marca in MARCAS_DE_EXEMPLO:
        if marca in minusculo:
            i = minusculo.index(marca)
            return ("é um exemplo, não o link do seu vídeo (tem \"%s\"): publique o vídeo e "
                    "dê o link dele" % texto[i:i + len(marca)])
    partes = urllib.parse.urlsplit(texto)
    host = partes.hostname or ""
    if partes.scheme not in ("http", "https") or re.search(r"\s", texto):
        return "não é um link: dê o endereço inteiro, começando com https://"
    if "." not in host.strip(".") or host.startswith(".") or host.endswith("."):
        return "não é um link: falta o site (por exemplo youtu.be ou vimeo.com)"
    if not partes.path.strip("/") and not partes.query:
        return "não é o link de um vídeo: falta o endereço do vídeo depois do site"
    return None


# ------------------------------------------------------------ linha de comando

def principal(argumentos):
    parser = argparse.ArgumentParser(
        description="Gera o relatório (PDF) e o ZIP de entrega; --verificar confere as citações.")
    parser.add_argument("--nome", help="nome do aluno (seção I)")
    parser.add_argument("--ra", help="RA do aluno (seção I; nome do PDF no ZIP)")
    parser.add_argument("--video", help="link do vídeo (seção II)")
    parser.add_argument("--video-desenhado", action="store_true",
                        help="o vídeo é o do relatorio/video.py (desenhado de uma execução "
                             "real), não uma gravação da tela: a seção II diz isso")
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
    # Cada recusa é uma linha em stderr, código 2, e nada gravado (nem PDF nem ZIP).
    if opcoes.ra is not None and not re.match(r"^[A-Za-z0-9._-]+$", opcoes.ra):
        print("ERRO: --ra: use só letras, dígitos, ponto, hífen ou sublinhado", file=sys.stderr)
        return 2
    problema = problema_do_link(opcoes.video) if opcoes.video is not None else None
    if problema:
        print("ERRO: --video %s %s" % (opcoes.video, problema), file=sys.stderr)
        return 2
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
        gerar_pdf(pdf, opcoes.nome, opcoes.ra, opcoes.video, desenhado=opcoes.video_desenhado)
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
