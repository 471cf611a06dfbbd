"""Mensagem: a única coisa que trafega na rede, como uma linha JSON."""

import json


class Mensagem:
    """Uma requisição ou resposta; na rede, um objeto JSON numa linha UTF-8 terminada em \\n."""

    # Tipos de mensagem, nomeados uma única vez (Servidor e Cliente nunca escrevem a string).
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

    # Campos obrigatórios de cada tipo; "origem" é opcional no PUT (PUT encaminhado).
    CAMPOS = {
        PUT: ("key", "value"),
        PUT_OK: ("key", "value", "timestamp"),
        GET: ("key", "timestamp"),
        GET_OK: ("key", "value", "timestamp"),
        TRY_OTHER_SERVER_OR_LATER: ("key", "timestamp"),
        JOIN: ("origem",),
        JOIN_OK: ("dados", "timestamp"),
        REPLICATION: ("key", "value", "timestamp"),
        REPLICATION_OK: ("key", "timestamp"),
        ERRO: ("value",),
    }

    # Uma linha maior que isto é recusada (SPEC 5): protege a memória do servidor.
    LIMITE_LINHA = 16 * 1024 * 1024
    # A resposta a um pedido legal leva o mesmo value mais tipo e timestamp (dezenas de bytes):
    # quem lê respostas aceita esta folga, senão um PUT legal teria um PUT_OK ilegível.
    LIMITE_RESPOSTA = LIMITE_LINHA + 1024
    # Timestamps cabem em 64 bits, como o zxid do ZooKeeper; acima disso é entrada inválida.
    MAIOR_TIMESTAMP = 2 ** 63 - 1

    __slots__ = ("tipo", "key", "value", "timestamp", "origem", "dados")

    def __init__(self, tipo, key=None, value=None, timestamp=None, origem=None, dados=None):
        self.tipo = tipo
        self.key = key
        self.value = value
        self.timestamp = timestamp
        self.origem = origem
        self.dados = dados

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
        if self.origem is not None:
            objeto["origem"] = self.origem
        # ensure_ascii=False: acentos viajam como UTF-8; o JSON escapa \n dentro das strings.
        return (Mensagem.CODIFICADOR.encode(objeto) + "\n").encode("utf-8")

    @classmethod
    def de_linha(cls, linha):
        """Valida e converte uma linha recebida; entrada inválida levanta ValueError."""
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
            setattr(mensagem, campo, cls._validar(campo, objeto[campo]))
        if "origem" in objeto and tipo in (cls.PUT, cls.JOIN):
            mensagem.origem = cls._validar("origem", objeto["origem"])
        return mensagem

    # ---- enquadramento: a mensagem é dona do socket na hora de enviar e receber ----

    def enviar(self, sock):
        """Envia a mensagem inteira (sendall) pelo socket."""
        sock.sendall(self.para_linha())

    @classmethod
    def receber(cls, arquivo, limite=LIMITE_LINHA):
        """Lê uma mensagem de arquivo (socket.makefile("rb")); None quando a conexão terminou.

        limite=None só para quem confia no outro lado: o snapshot do líder pode passar de 16 MiB.

        Linha inválida ou longa demais levanta ValueError (a linha inteira é consumida).
        Uma linha cortada pelo fim da conexão devolve None: o outro lado caiu no meio.
        """
        linha = arquivo.readline(-1 if limite is None else limite + 1)
        if not linha.endswith(b"\n"):
            if limite is None or len(linha) <= limite:
                return None
            # Descarta o resto da linha em pedaços: a próxima mensagem continua legível.
            while not linha.endswith(b"\n"):
                linha = arquivo.readline(64 * 1024)
                if not linha:
                    return None
            raise ValueError("linha maior que 16 MiB")
        return cls.de_linha(linha)

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
        fim = resto.rfind(b"\n", inicio)
        if fim < 0:
            return []
        linhas = resto[:fim].split(b"\n")
        del resto[:fim + 1]
        return [cls.de_linha(linha) for linha in linhas]

    # ---- validação de cada campo ----

    @staticmethod
    def _recusar_constante(nome):
        raise ValueError("constante %s não é permitida" % nome)

    @staticmethod
    def _inteiro(digitos):
        # Converter milhões de dígitos leva minutos no Python 3.8: recusa antes de converter.
        if len(digitos) > 20:
            raise ValueError("número grande demais")
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
    def _validar(cls, campo, valor):
        if campo == "key":
            if cls._texto(campo, valor) == "":
                raise ValueError("a key não pode ser vazia")
            return valor
        if campo == "value":
            return None if valor is None else cls._texto(campo, valor)
        if campo == "timestamp":
            return cls._timestamp(valor)
        if campo == "origem":
            return cls._origem(valor)
        return cls._dados(valor)

    @classmethod
    def _timestamp(cls, valor):
        # bool é subclasse de int em Python: true não é um timestamp.
        if type(valor) is not int or not 0 <= valor <= cls.MAIOR_TIMESTAMP:
            raise ValueError("timestamp deve ser inteiro de 0 a 2^63-1, veio %s" % cls._curto(valor))
        return valor

    @classmethod
    def _origem(cls, valor):
        ip, _, porta = cls._texto("origem", valor).rpartition(":")
        if not ip or not porta.isdigit() or not 1 <= int(porta) <= 65535:
            raise ValueError("origem deve ser \"ip:porta\", veio %s" % cls._curto(valor))
        return valor

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


# Um codificador e um decodificador para todas as mensagens: json.dumps e json.loads com opções
# criam um novo a cada chamada. Ficam aqui, depois da classe, porque usam métodos dela.
Mensagem.CODIFICADOR = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
Mensagem.DECODIFICADOR = json.JSONDecoder(parse_constant=Mensagem._recusar_constante,
                                          parse_int=Mensagem._inteiro)
