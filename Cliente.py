"""Cliente do KV Store: o menu INIT/PUT/GET sobre uma biblioteca (enunciado, seções 4 e 6)."""

import os
import random
import socket
import sys
import time

from Mensagem import Mensagem


class Cliente:
    """Fala com os servidores; guarda um timestamp por key para nunca ver valor mais velho."""

    IP_PADRAO = "127.0.0.1"
    PORTAS_PADRAO = (10097, 10098, 10099)
    MENU = "INIT, PUT ou GET? "
    AVISO_MENU = "Opção inválida: digite INIT, PUT ou GET."
    # Prazos (além do enunciado): um servidor fora do ar ou pausado é pulado.
    PRAZO_CONEXAO = 3.0       # para conectar a um servidor
    PRAZO_GET = 5.0           # um GET é respondido na hora; quem não responde nisso é pulado
    # Prazo de cada tentativa de PUT (envio e espera da resposta). O líder espera os seguidores
    # sem teto fixo (enunciado, seção 5e): com o prazo de replicação padrão dele (40 s), um
    # seguidor que parou de confirmar custa menos de um minuto, e cada PUT na fila de um
    # seguidor com --atraso-replicacao 30 custa 30 s. Vencido este prazo, o mesmo pedido (mesmo
    # id) vai ao próximo servidor, e o líder responde a repetição com o timestamp do original
    # quando ele termina: um servidor pausado custa no máximo 2 min.
    PRAZO_PUT = 120.0
    FATIA_ESPERA = 0.5        # espera a resposta em fatias: Ctrl+C funciona no Windows
    PAUSA_APOS_FALHA = 5.0    # servidor que falhou vai para o fim da fila por um tempo

    def __init__(self, prazo_get=None, prazo_put=None):
        self.servidores = []
        # Um timestamp por key, começando em 0; só sobe (PUT_OK e GET_OK) até o próximo INIT.
        self.timestamps = {}
        # Além do enunciado (veja requisitar): servidor -> (socket, arquivo de leitura) aberto,
        # servidor -> instante da última falha, e o prazo de cada tentativa por tipo de pedido.
        self.conexoes = {}
        self.falhas = {}
        self.prazos = {Mensagem.GET: Cliente.PRAZO_GET if prazo_get is None else prazo_get,
                       Mensagem.PUT: Cliente.PRAZO_PUT if prazo_put is None else prazo_put}

    def menu(self):
        """O menu no console: só pergunta e imprime; o trabalho é de inicializar, put e get."""
        acoes = {"INIT": self.menu_init, "PUT": self.menu_put, "GET": self.menu_get}
        while True:
            opcao = input(Cliente.MENU).strip().upper()
            acao = acoes.get(opcao)
            if acao is not None:
                acao()
            else:
                Cliente.avisar(Cliente.AVISO_MENU)

    # [4a] INIT: IP e porta dos três servidores, lidos do teclado; o cliente começa do zero com
    # eles (inicializar, logo abaixo) e não sabe quem é o líder (enunciado, seção 4a).
    def menu_init(self):
        """INIT: pergunta IP e porta de cada servidor (Enter aceita o padrão) e inicializa."""
        servidores = []
        for numero, porta_padrao in enumerate(Cliente.PORTAS_PADRAO, start=1):
            ip = Cliente.perguntar_ip(numero)
            porta = Cliente.perguntar_porta(numero, porta_padrao)
            servidores.append((ip, porta))
        self.inicializar(servidores)

    def inicializar(self, servidores):
        """Começa do zero com os servidores [(ip, porta), ...]: todo timestamp em 0, conexões
        antigas fechadas (as novas abrem no primeiro uso), falhas esquecidas."""
        novos = [(str(ip), int(porta)) for ip, porta in servidores]
        if not novos:
            raise ValueError("informe ao menos um servidor")
        self.fechar()
        self.servidores = novos
        # Timestamps inicializados em zero (enunciado, seção 4): se os servidores reiniciaram
        # vazios, os antigos, maiores que os deles, dariam TRY_OTHER_SERVER_OR_LATER para sempre.
        self.timestamps = {}
        self.falhas = {}

    # [4b] PUT: key e value lidos do teclado vão a um servidor sorteado (put, logo abaixo; o
    # sorteio está em ordem, no fim do arquivo); o PUT_OK traz o timestamp da key, e o cliente
    # imprime a linha da seção 6.
    def menu_put(self):
        """PUT: pergunta key e value, envia e imprime a linha do PUT_OK."""
        if not self.servidores:
            Cliente.avisar("Faça INIT antes de PUT.")
            return
        key = Cliente.perguntar_key()
        if key is None:
            return
        value = input("Value: ")
        try:
            resposta, servidor = self.put(key, value)
        except ValueError as erro:
            Cliente.avisar("Key ou value inválido: %s; o PUT não foi feito." % erro)
            return
        except ConnectionError as erro:
            # A palavra final da biblioteca: "não foi feito" ou "pode ou não ter sido feito".
            Cliente.avisar(str(erro))
            return
        if resposta.tipo == Mensagem.ERRO:
            Cliente.avisar_erro(servidor, resposta)
            return
        # A linha do PUT_OK (enunciado, seção 6), com o servidor que recebeu o pedido.
        print("PUT_OK key: %s value %s timestamp %d realizada no servidor %s:%d"
              % ((Mensagem.mostrar(key), Mensagem.mostrar(resposta.value), resposta.timestamp)
                 + servidor), flush=True)

    def put(self, key, value, servidor=None):
        """PUT a um servidor sorteado (ou ao escolhido); devolve (resposta, servidor): PUT_OK,
        que sobe o timestamp da key, ou ERRO. ValueError: key ou value inválidos, nada foi
        enviado; ConnectionError: nenhum servidor confirmou, e a frase diz se o PUT pode ter
        sido feito (veja requisitar)."""
        Cliente.validar_key(key)
        if value is not None and not isinstance(value, str):
            raise ValueError("o value deve ser texto")
        # O id deixa o líder reconhecer uma repetição deste PUT (veja requisitar).
        pedido = Mensagem(Mensagem.PUT, key=key, value=value, id=os.urandom(8).hex())
        resposta, servidor = self.requisitar(pedido, servidor, (Mensagem.PUT_OK,))
        if resposta.tipo == Mensagem.PUT_OK:
            self.atualizar(key, resposta.timestamp)
        return resposta, servidor

    # [4c] GET: a key lida do teclado vai, com o timestamp que o cliente já viu para ela, a um
    # servidor sorteado (get, logo abaixo; o sorteio está em ordem); a resposta é o value (NULL
    # se não existe) ou TRY_OTHER_SERVER_OR_LATER, e o cliente imprime a linha da seção 6.
    def menu_get(self):
        """GET: pergunta a key, envia e imprime a linha da resposta."""
        if not self.servidores:
            Cliente.avisar("Faça INIT antes de GET.")
            return
        key = Cliente.perguntar_key()
        if key is None:
            return
        enviado = self.timestamps.get(key, 0)
        try:
            resposta, servidor = self.get(key)
        except ValueError as erro:
            Cliente.avisar("Key inválida: %s." % erro)
            return
        except ConnectionError as erro:
            Cliente.avisar(str(erro))
            return
        if resposta.tipo == Mensagem.ERRO:
            Cliente.avisar_erro(servidor, resposta)
            return
        if resposta.tipo == Mensagem.GET_OK:
            valor = Mensagem.mostrar(resposta.value)
        else:
            valor = Mensagem.TRY_OTHER_SERVER_OR_LATER
        # A linha da resposta do GET (enunciado, seção 6).
        print("GET key: %s value: %s obtido do servidor %s:%d, meu timestamp %d e do servidor %d"
              % ((Mensagem.mostrar(key), valor) + servidor + (enviado, resposta.timestamp)),
              flush=True)

    def get(self, key, servidor=None):
        """GET a um servidor sorteado (ou ao escolhido) com o timestamp que o cliente tem para a
        key; devolve (resposta, servidor): GET_OK, TRY_OTHER_SERVER_OR_LATER ou ERRO."""
        Cliente.validar_key(key)
        pedido = Mensagem(Mensagem.GET, key=key, timestamp=self.timestamps.get(key, 0))
        esperados = (Mensagem.GET_OK, Mensagem.TRY_OTHER_SERVER_OR_LATER)
        resposta, servidor = self.requisitar(pedido, servidor, esperados)
        if resposta.tipo == Mensagem.GET_OK:
            self.atualizar(key, resposta.timestamp)
        return resposta, servidor

    def atualizar(self, key, timestamp):
        """Guarda o timestamp de um PUT_OK ou GET_OK, se é maior que o que o cliente tem."""
        # Nunca baixa (só um INIT zera tudo): é isso que impede o cliente de aceitar um valor
        # mais velho depois.
        if timestamp > self.timestamps.get(key, 0):
            self.timestamps[key] = timestamp

    # ---- Além do enunciado: repetir um PUT sem gravar duas vezes (id), servidor fora do ar ----
    # Também: servidor pausado, e a espera em fatias que deixa Ctrl+C funcionar no Windows.

    def requisitar(self, pedido, servidor, esperados):
        """Manda a um servidor (o escolhido ou um ao acaso) e devolve (resposta, servidor).

        Servidor fora do ar, que não responde no prazo, que cai no meio ou que responde fora
        do protocolo é pulado para o próximo; o PUT vai com o mesmo id, e o líder responde a
        repetição sem gravar duas vezes (ele lembra os ids recentes, só na memória: um líder
        que reiniciou no meio grava de novo). Num PUT, um ERRO só é devolvido se nenhuma
        tentativa anterior foi enviada. Quando nenhum responde: ConnectionError com a frase
        para a pessoa, "o PUT pode ou não ter sido feito" se alguma tentativa foi enviada
        (mesmo que um servidor diga outra coisa depois), senão "o PUT não foi feito".
        """
        if not self.servidores and servidor is None:
            raise ValueError("faça INIT antes")
        linha = pedido.para_linha()  # texto que não dá para enviar é erro daqui, não da rede
        prazo = self.prazos[pedido.tipo]
        # Um PUT enviado que ficou sem resposta pode ter chegado ao líder e sido gravado.
        talvez_feito = False
        for candidato in ([tuple(servidor)] if servidor is not None else self.ordem()):
            enviado = False
            try:
                sock, arquivo = self.conexao(candidato)
                limite = time.monotonic() + prazo   # um prazo por tentativa: envio e resposta
                sock.sendall(linha)
                enviado = True
                self.esperar_resposta(sock, limite)
                resposta = Mensagem.receber(arquivo, limite=Mensagem.LIMITE_RESPOSTA)
                if resposta is None:
                    raise ConnectionError("o servidor fechou a conexão")
                if resposta.tipo not in esperados + (Mensagem.ERRO,) or (
                        resposta.tipo != Mensagem.ERRO and resposta.key != pedido.key):
                    raise ValueError("resposta %s fora do protocolo" % resposta.tipo)
            except (OSError, ValueError):
                talvez_feito = talvez_feito or (enviado and pedido.tipo == Mensagem.PUT)
                self.descartar(candidato)
                self.falhas[candidato] = time.monotonic()
                continue
            self.falhas.pop(candidato, None)
            if resposta.tipo == Mensagem.ERRO and talvez_feito:
                # Um seguidor que diz "o líder está fora do ar; o PUT não foi feito" fala só da
                # tentativa dele: a anterior pode ter sido gravada. Segue: outro servidor ainda
                # pode trazer o PUT_OK (o líder responde a repetição com o ts do original).
                continue
            return resposta, candidato
        if pedido.tipo == Mensagem.GET:
            raise ConnectionError("Nenhum servidor respondeu ao GET.")
        if talvez_feito:
            raise ConnectionError("Nenhum servidor confirmou; o PUT pode ou não ter sido feito.")
        raise ConnectionError("Nenhum servidor respondeu; o PUT não foi feito.")

    def ordem(self):
        """Servidores ao acaso, os que falharam há pouco por último (no Windows, um
        servidor fora do ar leva ~2 s para recusar a conexão)."""
        agora = time.monotonic()
        fila = list(self.servidores)
        random.shuffle(fila)
        fila.sort(key=lambda s: agora - self.falhas.get(s, -1e9) < Cliente.PAUSA_APOS_FALHA)
        return fila

    def conexao(self, servidor):
        """A conexão persistente com o servidor; reaberta se ele a fechou nesse meio tempo."""
        existente = self.conexoes.get(servidor)
        if existente is not None:
            # Legível antes de pedir algo = o servidor fechou (ou reiniciou): reabre.
            if not Mensagem.pronta(existente[0], 0):
                return existente
            self.descartar(servidor)
        sock = socket.create_connection(servidor, Cliente.PRAZO_CONEXAO)
        # Sem Nagle: cada requisição é uma linha curta que deve sair já.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # O prazo do envio; a resposta é esperada em esperar_resposta, com o prazo do pedido.
        sock.settimeout(max(self.prazos.values()))
        self.conexoes[servidor] = (sock, sock.makefile("rb"))
        return self.conexoes[servidor]

    # [sem-threads] O cliente não cria threads: um pedido por vez, e a espera em fatias
    # curtas deixa Ctrl+C funcionar no Windows.
    def esperar_resposta(self, sock, limite):
        """Espera o começo da resposta em fatias curtas (a thread principal segue ouvindo
        Ctrl+C); socket.timeout passado o limite (um instante de time.monotonic())."""
        while not Mensagem.pronta(sock, min(Cliente.FATIA_ESPERA,
                                            max(0.0, limite - time.monotonic()))):
            if time.monotonic() >= limite:
                raise socket.timeout("o servidor não respondeu a tempo")

    def descartar(self, servidor):
        """Fecha e esquece a conexão com um servidor que falhou."""
        existente = self.conexoes.pop(servidor, None)
        if existente is not None:
            existente[1].close()
            existente[0].close()

    def fechar(self):
        """Fecha as conexões abertas."""
        for sock, arquivo in self.conexoes.values():
            arquivo.close()
            sock.close()
        self.conexoes.clear()

    # ---- Além do enunciado: conferir o que se digita e dizer o erro em stderr ----

    @staticmethod
    def validar_key(key):
        if not isinstance(key, str) or not key:
            raise ValueError("a key deve ser um texto não vazio")

    @staticmethod
    def perguntar_ip(numero):
        """O IP do servidor, conferido como o servidor confere o dele; Enter aceita o padrão."""
        while True:
            ip = input("IP do servidor %d [%s]: " % (numero, Cliente.IP_PADRAO)).strip()
            ip = ip or Cliente.IP_PADRAO
            try:
                socket.getaddrinfo(ip, None)   # um IP ou nome que resolve
                return ip
            except (OSError, UnicodeError):
                pass
            Cliente.avisar("IP inválido: %s não é um endereço conhecido." % ip)

    @staticmethod
    def perguntar_porta(numero, padrao):
        while True:
            texto = input("Porta do servidor %d [%d]: " % (numero, padrao)).strip()
            if not texto:
                return padrao
            if Mensagem.porta_valida(texto):
                return int(texto)
            Cliente.avisar("Porta inválida: use um número de 1 a 65535.")

    @staticmethod
    def perguntar_key():
        """A key digitada, ou None (com o aviso) se veio vazia."""
        key = input("Key: ").strip()
        if not key:
            Cliente.avisar("A key não pode ser vazia.")
            return None
        return key

    @staticmethod
    def avisar(linha):
        """Linha de erro para a pessoa, em stderr: stdout fica só com as linhas da seção 6."""
        print(linha, file=sys.stderr, flush=True)

    @staticmethod
    def avisar_erro(servidor, resposta):
        """O ERRO de um servidor, em stderr; o texto vem da rede: escapado, numa linha só."""
        Cliente.avisar("Erro do servidor %s:%d: %s"
                       % (servidor + (Mensagem.mostrar(resposta.value),)))


def main():
    sys.stdout.reconfigure(errors="replace")
    sys.stderr.reconfigure(errors="replace")
    if len(sys.argv) > 1:
        print("uso: python Cliente.py (sem argumentos; o menu pede o resto)", file=sys.stderr)
        return 2
    cliente = Cliente()
    try:
        cliente.menu()
    except (EOFError, KeyboardInterrupt):
        print(flush=True)  # fim da entrada ou Ctrl+C: sai limpo, o shell na linha seguinte
    finally:
        cliente.fechar()
    return 0


if __name__ == "__main__":
    sys.exit(main())
