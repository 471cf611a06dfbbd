"""Mensagem: a única coisa que trafega na rede, como uma linha JSON (enunciado, seção 8)."""

import ipaddress
import json
import socket


class Mensagem:
    """Uma requisição ou resposta; na rede, um objeto JSON numa linha UTF-8 terminada em \\n."""

    # Tipos de mensagem, nomeados uma única vez (Servidor e Cliente nunca escrevem a string).
    # Os das seções 4 e 5 do enunciado; JOIN, JOIN_OK e ERRO vão além dele.
    PUT = "PUT"
    PUT_OK = "PUT_OK"
    GET = "GET"
    GET_OK = "GET_OK"
    TRY_OTHER_SERVER_OR_LATER = "TRY_OTHER_SERVER_OR_LATER"
    JOIN = "JOIN"
    JOIN_OK = "JOIN_OK"
    REPLICATION = "REPLICATION"
    REPLICATION_OK = "REPLICATION_OK"
    ERRO = "ERRO"

    # Campos obrigatórios de cada tipo.
    CAMPOS = {
        PUT: ("key", "value"),
        PUT_OK: ("key", "value", "timestamp"),
        GET: ("key", "timestamp"),
        GET_OK: ("key", "value", "timestamp"),
        TRY_OTHER_SERVER_OR_LATER: ("key", "timestamp"),
        JOIN: ("origem",),
        JOIN_OK: ("dados", "timestamp"),
        REPLICATION: ("key", "value", "timestamp"),
        REPLICATION_OK: ("timestamp",),
        ERRO: ("value",),
    }
    # Campos opcionais: "origem" no PUT encaminhado; "id" deixa o líder reconhecer um PUT
    # repetido; o JOIN leva o maior ts e a tabela do seguidor; o REPLICATION_OK do snapshot
    # não tem key.
    OPCIONAIS = {
        PUT: ("origem", "id"),
        PUT_OK: ("id",),
        JOIN: ("timestamp", "dados"),
        REPLICATION_OK: ("key",),
    }

    # Um codificador JSON para todas as mensagens (json.dumps com opções monta um a cada
    # chamada). ensure_ascii=False: acentos viajam como UTF-8; o JSON escapa \n dentro das
    # strings, então cada mensagem ocupa uma linha só.
    CODIFICADOR = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
    # Limites (além do enunciado). Uma linha maior que isto é recusada: protege a memória do
    # servidor.
    LIMITE_LINHA = 16 * 1024 * 1024
    # A resposta a um pedido legal leva o mesmo value mais tipo e timestamp (dezenas de bytes),
    # e o PUT encaminhado leva a origem: quem lê aceita esta folga, e o que passa do limite
    # por causa dela é conferido em _conferir_tamanho().
    FOLGA = 1024
    LIMITE_RESPOSTA = LIMITE_LINHA + FOLGA
    # O JOIN leva a tabela inteira do seguidor, que pode passar de 16 MiB: é com ela que um
    # líder reiniciado recupera o que perdeu. Tem um limite próprio, bem maior. Reconhecido
    # pelo começo da linha, como a própria Mensagem o escreve.
    LIMITE_JOIN = 256 * 1024 * 1024
    INICIO_JOIN = b'{"tipo":"JOIN",'
    # Timestamps cabem em 64 bits, como o zxid do ZooKeeper; acima disso é entrada inválida.
    MAIOR_TIMESTAMP = 2 ** 63 - 1
    MAIOR_ID = 64

    __slots__ = ("tipo", "key", "value", "timestamp", "origem", "dados", "id")

    def __init__(self, tipo, key=None, value=None, timestamp=None, origem=None, dados=None,
                 id=None):
        self.tipo = tipo
        self.key = key
        self.value = value
        self.timestamp = timestamp
        self.origem = origem
        self.dados = dados
        self.id = id

    def __repr__(self):
        campos = ", ".join("%s=%r" % (c, getattr(self, c)) for c in self.__slots__
                           if getattr(self, c) is not None)
        return "Mensagem(%s)" % campos

    # ---- conversão: uma ida (para_linha) e uma volta (de_linha) ----

    def para_linha(self):
        """Serializa em bytes: um objeto JSON compacto, UTF-8, terminado em \\n."""
        objeto = {"tipo": self.tipo}
        for campo in Mensagem.CAMPOS[self.tipo]:
            objeto[campo] = getattr(self, campo)
        for campo in Mensagem.OPCIONAIS.get(self.tipo, ()):
            if getattr(self, campo) is not None:
                objeto[campo] = getattr(self, campo)
        # Texto que não é Unicode válido (um \ud800 solto): ValueError aqui, antes da rede.
        try:
            return (Mensagem.CODIFICADOR.encode(objeto) + "\n").encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("a mensagem tem texto que não é Unicode válido") from None

    @classmethod
    def de_linha(cls, linha):
        """Valida e converte uma linha recebida; entrada inválida levanta ValueError."""
        if linha.startswith(b"\xef\xbb\xbf"):
            linha = linha[3:]  # BOM do UTF-8 que alguns editores põem no começo: tolerado
        try:
            texto = linha.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError("a linha não é UTF-8 válido") from None
        try:
            objeto = cls.DECODIFICADOR.decode(texto)
        except RecursionError:
            raise ValueError("JSON aninhado demais") from None
        except ValueError as erro:
            raise ValueError("JSON inválido: %s" % erro) from None
        if not isinstance(objeto, dict):
            raise ValueError("a mensagem deve ser um objeto JSON")
        tipo = objeto.get("tipo")
        if not isinstance(tipo, str) or tipo not in cls.CAMPOS:
            raise ValueError("tipo ausente ou desconhecido: %s" % cls._curto(tipo))
        mensagem = cls(tipo)
        for campo in cls.CAMPOS[tipo]:
            if campo not in objeto:
                raise ValueError("falta o campo %s em %s" % (campo, tipo))
            setattr(mensagem, campo, cls._validar(campo, objeto[campo], tipo))
        for campo in cls.OPCIONAIS.get(tipo, ()):
            if objeto.get(campo) is not None:
                setattr(mensagem, campo, cls._validar(campo, objeto[campo], tipo))
        return mensagem

    # ---- enquadramento: uma mensagem por linha, enviada e recebida pela própria Mensagem ----

    def enviar(self, sock):
        """Envia a mensagem inteira (sendall) pelo socket."""
        sock.sendall(self.para_linha())

    @classmethod
    def receber(cls, arquivo, limite=LIMITE_LINHA, join=False):
        """Lê uma mensagem (uma linha) de arquivo, um socket.makefile("rb"); None quando a
        conexão terminou, também no meio de uma linha.

        Linha inválida ou acima do limite levanta ValueError (a linha inteira é consumida).
        limite=None só para quem confia no outro lado: o snapshot do líder pode passar de
        16 MiB. join=True: um JOIN pode ir até LIMITE_JOIN.
        """
        maximo = -1 if limite is None else limite + cls.FOLGA + 1
        linha = arquivo.readline(maximo)
        if not linha.endswith(b"\n"):
            if limite is None or len(linha) < maximo:
                return None
            return cls._linha_longa(arquivo, linha, limite, join)
        mensagem = cls.de_linha(linha)
        if limite is not None and len(linha) > limite:
            cls._conferir_tamanho(linha, mensagem, limite, join)
        return mensagem

    # ---- Além do enunciado: limites de tamanho (16 MiB por pedido, 256 MiB por JOIN) ----

    @classmethod
    def _linha_longa(cls, arquivo, linha, limite, join):
        """Para receber(): a linha passou do limite sem terminar. Um JOIN (com join=True) é
        lido até LIMITE_JOIN; o resto é descartado e levanta ValueError com o limite que valia.
        None se a conexão termina antes do fim da linha."""
        motivo = "linha maior que %s" % cls._tamanho(limite)
        if join and linha.startswith(cls.INICIO_JOIN):
            linha += arquivo.readline(cls.LIMITE_JOIN - len(linha))
            if linha.endswith(b"\n"):
                return cls.de_linha(linha)
            if len(linha) < cls.LIMITE_JOIN:
                return None
            motivo = "JOIN maior que %s" % cls._tamanho(cls.LIMITE_JOIN)
        # Descarta o resto da linha em pedaços: a próxima mensagem continua legível.
        while not linha.endswith(b"\n"):
            linha = arquivo.readline(64 * 1024)
            if not linha:
                return None
        raise ValueError(motivo)

    @classmethod
    def _conferir_tamanho(cls, linha, mensagem, limite, join):
        """Para receber(): uma linha inteira passa do limite só pela origem (do seguidor) e
        pelo id (do Cliente), que não contam nele: um PUT legal é legal por qualquer servidor.
        Um JOIN (com join=True) tem o limite dele, LIMITE_JOIN, bem maior que esta linha."""
        if join and mensagem.tipo == cls.JOIN:
            return
        acrescimo = sum(len(',"%s":""' % campo) + len(valor.encode("utf-8"))
                        for campo, valor in (("origem", mensagem.origem), ("id", mensagem.id))
                        if valor is not None)
        if len(linha) - acrescimo > limite:
            raise ValueError("linha maior que %s" % cls._tamanho(limite))

    @staticmethod
    def _tamanho(limite):
        """O limite numa mensagem de erro: em MiB quando é um número inteiro deles."""
        if limite % (1024 * 1024):
            return "%d bytes" % limite
        return "%d MiB" % (limite // (1024 * 1024))

    # ---- Além do enunciado: validação de cada campo (o servidor responde ERRO e segue) ----

    @staticmethod
    def _inteiro(digitos):
        # Converter milhões de dígitos leva minutos no Python 3.8: número longo fica como
        # texto, que a validação de timestamp recusa (e um campo desconhecido ignora).
        if len(digitos) > 20:
            return digitos
        return int(digitos)

    @staticmethod
    def _curto(valor):
        texto = repr(valor)
        return texto if len(texto) <= 40 else texto[:37] + "..."

    @classmethod
    def _texto(cls, campo, valor):
        if not isinstance(valor, str):
            raise ValueError("o campo %s deve ser texto, veio %s" % (campo, cls._curto(valor)))
        if valor.isascii():
            return valor  # o caso comum: sem a cópia que encode() faria
        try:
            # Um \ud800 solto é JSON válido mas não é texto: não seria impresso nem reenviado.
            valor.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("o campo %s não é texto Unicode válido" % campo) from None
        return valor

    @classmethod
    def _validar(cls, campo, valor, tipo=None):
        if campo == "key":
            if cls._texto(campo, valor) == "":
                raise ValueError("a key não pode ser vazia")
            return valor
        if campo == "value":
            return None if valor is None else cls._texto(campo, valor)
        if campo == "timestamp":
            return cls._timestamp(valor)
        if campo == "origem":
            return cls._origem(valor, tipo)
        if campo == "id":
            if not 0 < len(cls._texto(campo, valor)) <= cls.MAIOR_ID:
                raise ValueError("id deve ter de 1 a %d caracteres" % cls.MAIOR_ID)
            return valor
        return cls._dados(valor)

    @classmethod
    def _timestamp(cls, valor):
        # bool é subclasse de int em Python: true não é um timestamp.
        if type(valor) is not int or not 0 <= valor <= cls.MAIOR_TIMESTAMP:
            raise ValueError("timestamp deve ser inteiro de 0 a 2^63-1, veio %s"
                             % cls._curto(valor))
        return valor

    @classmethod
    def _origem(cls, valor, tipo):
        """"ip:porta": num PUT encaminhado, o endereço que o seguidor viu no socket do
        cliente; num JOIN, o do seguidor, que pode ter um nome de máquina no lugar do IP.
        Nada mais: a origem aparece no console, e texto livre forjaria uma linha."""
        ip, _, porta = cls._texto("origem", valor).rpartition(":")
        nome = ip.replace("-", "").replace(".", "")
        if not cls.porta_valida(porta) or not (cls._eh_ip(ip) or (
                tipo == cls.JOIN and nome.isascii() and nome.isalnum())):
            raise ValueError("origem deve ser \"ip:porta\", veio %s" % cls._curto(valor))
        return valor

    @staticmethod
    def _eh_ip(texto):
        ip, _, zona = texto.partition("%")   # fe80::1%eth0: um IPv6 local traz a interface
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            return False
        return zona == "" or (zona.isascii() and zona.isalnum())

    @classmethod
    def _dados(cls, valor):
        if not isinstance(valor, dict):
            raise ValueError("dados deve ser um objeto key -> [value, timestamp]")
        for key, entrada in valor.items():
            if not isinstance(entrada, list) or len(entrada) != 2:
                raise ValueError("dados[%s] deve ser [value, timestamp]" % cls._curto(key))
            cls._validar("key", key)
            cls._validar("value", entrada[0])
            cls._timestamp(entrada[1])
        return valor

    # ---- Além do enunciado: lotes de mensagens no canal de replicação ----

    @classmethod
    def receber_lote(cls, arquivo, resto):
        """Lê o que já chegou (esperando, se nada chegou) e devolve as mensagens completas.

        Para o canal de replicação, em que só o líder fala (sem limite de linha, como
        receber(limite=None)): uma leitura traz várias mensagens. resto (bytearray) guarda o
        começo da linha ainda incompleta até a próxima chamada. None quando a conexão terminou.
        """
        dados = arquivo.read1(64 * 1024)
        if not dados:
            return None
        inicio = len(resto)
        resto += dados
        return [cls.de_linha(linha) for linha in cls.cortar_linhas(resto, inicio)]

    @staticmethod
    def cortar_linhas(resto, inicio=0):
        """Tira de resto (bytearray) as linhas já inteiras e as devolve, sem o \\n; o começo de
        uma linha ainda incompleta fica em resto. Só procura o \\n do índice inicio em diante
        (o que veio antes já foi procurado): um value de 16 MiB chega em pedaços sem custar
        uma busca inteira a cada pedaço."""
        fim = resto.rfind(b"\n", inicio)
        if fim < 0:
            return []
        linhas = bytes(resto[:fim]).split(b"\n")
        del resto[:fim + 1]
        return linhas

    # ---- Além do enunciado: o que vem de fora, mostrado e conferido; a espera da resposta ----
    # Ficam na Mensagem porque tratam de campos que viajam nela: mostrar escapa o texto de um
    # campo (key, value, origem, o value de um ERRO) para o console; porta_valida confere a
    # porta da origem (o menu do Cliente e as perguntas do Servidor a reusam para a porta
    # digitada); pronta espera a próxima mensagem de uma conexão, como receber.

    # Caracteres que quebrariam ou falsificariam uma linha de console: os de controle (C0, DEL,
    # C1, menos o tab, que não quebra a linha) e os separadores de linha e parágrafo do Unicode.
    ESCAPES = {c: "\\x%02x" % c for c in range(0xA0) if (c < 0x20 or c >= 0x7F) and c != 0x09}
    ESCAPES.update({0x0A: "\\n", 0x0D: "\\r", 0x2028: "\\u2028", 0x2029: "\\u2029"})

    @staticmethod
    def mostrar(valor):
        """O texto de um campo numa linha de console: NULL para nulo, e quebras de linha e
        outros caracteres de controle escapados (um evento é uma linha; o tab fica)."""
        if valor is None:
            return "NULL"
        if valor.isprintable():
            return valor  # o caso comum, sem cópia
        return valor.translate(Mensagem.ESCAPES)

    @staticmethod
    def porta_valida(texto):
        """Porta: só dígitos ASCII (não "²" nem "１", que isdigit() aceita), de 1 a 65535."""
        return texto.isascii() and texto.isdigit() and len(texto) <= 5 and 1 <= int(texto) <= 65535

    @staticmethod
    def pronta(sock, prazo):
        """Espera até prazo segundos (0: só olha) a próxima mensagem no socket: True se chegou
        algo, o fim da conexão ou um erro (a leitura seguinte o diz). Sem select(), que não vê
        descritores acima de 1023; o prazo do socket volta ao de antes."""
        antes = sock.gettimeout()
        sock.settimeout(prazo)
        try:
            sock.recv(1, socket.MSG_PEEK)
            return True
        except (BlockingIOError, socket.timeout):
            return False
        except OSError:
            return True
        finally:
            sock.settimeout(antes)


# O decodificador de de_linha(), um para todas as mensagens (json.loads com opções monta um a
# cada chamada). Fica depois da classe porque usa Mensagem._inteiro: no corpo da classe ele
# ainda é um objeto staticmethod, que o Python 3.8 não deixa chamar.
# NaN e Infinity não são JSON: parse_constant=str os deixa como texto, que nenhum campo
# numérico aceita (num campo desconhecido, são ignorados como o resto).
Mensagem.DECODIFICADOR = json.JSONDecoder(parse_constant=str, parse_int=Mensagem._inteiro)
