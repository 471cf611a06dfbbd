"""Servidor do KV Store: líder ou seguidor, uma thread por conexão (enunciado, seções 3 e 5)."""

import collections
import errno
import os
import socket
import sys
import threading
import time

from Mensagem import Mensagem


class Servidor:
    """Um servidor do KV store; é o líder quando o endereço do líder é um dos seus.

    Onde está cada item do enunciado, na ordem da seção 5. Depois vêm as partes "Além do
    enunciado": o que o trabalho não pede (quedas, prazos, recuperação, disco, linha de
    comando). O caminho de 5a-5f as chama por nomes que dizem o que fazem (entrar_no_lider,
    enviar_aos_seguidores, retirar...); numa primeira leitura basta o nome e a docstring.
      5a  inicialização: perguntar_tudo; abrir (no seguidor, CanalDoLider entra no líder)
      5b  uma thread por conexão: servir, Conexao
      5c  PUT: tratar_put e gravar_e_replicar (líder), encaminhar_put (seguidor)
      5d  REPLICATION: aplicar_replicacao (seguidor, na thread CanalDoLider)
      5e  REPLICATION_OK: confirmar (thread CanalDoSeguidor), esperar_confirmacoes
      5f  GET: tratar_get

    Threads, cada uma com um trabalho:
      - a principal aceita conexões (servir) e dá a cada uma uma Conexao;
      - Conexao serve uma conexão: lê um pedido, chama o tratador, responde. Os tratadores
        rodam nela: no líder, o PUT dá o timestamp, grava e envia as REPLICATIONs, e um JOIN
        faz da conexão o canal de replicação de um seguidor (a thread então termina);
      - CanalDoSeguidor (líder, uma por seguidor conectado) lê os REPLICATION_OK dele;
      - CanalDoLider (seguidor) abre o canal de replicação com o líder e aplica as REPLICATIONs;
      - Console escreve as linhas do console, em ordem.

    Um PUT no líder: a Conexao que o recebeu (do cliente, ou do encaminhamento de um
    seguidor), sob a trava_put, dá o timestamp, grava e manda a REPLICATION a cada seguidor;
    fora das travas, espera (esperar_confirmacoes). Quem a acorda é sempre liberar_confirmados,
    chamado por quem muda o que falta: a própria espera, o CanalDoSeguidor que lê o último
    REPLICATION_OK (confirmar), retirar (um seguidor saiu) e unir (um seguidor voltou com a
    cópia da tabela, que já tem a escrita). Então a Conexao responde PUT_OK.

    Travas, sempre nesta ordem: trava_put, depois trava_tabela ou trava_confirmacoes.
      trava_put (líder)    contador, proprias, ids, o registro em disco, todo envio por um
                           canal de replicação (a cópia do JOIN à parte) e seguidor.motivo (a
                           thread dele o lê depois que o canal cai); só quem a tem escreve na
                           tabela do líder (então lê-la sob ela basta)
      trava_tabela         cada operação no dicionário tabela que outra thread vê (o GET lê só
                           com ela) e maior_ts; nunca presa durante rede ou disco
      trava_confirmacoes   esperas, seguidor.confirmado e o popleft de seguidor.pendentes
      seguidores           escrito com trava_put e trava_confirmacoes, lido com qualquer uma
    Sem trava: a configuração, que não muda depois do __init__; seguidor.pendentes ganha itens
    sob a trava_put e só perde na thread dele (um deque aceita isso, como a fila do Console);
    avisados, chegando e fundidos são conjuntos (add e discard são atômicos no Python); a
    conexão de encaminhamento é de uma Conexao só.
    """

    IP_PADRAO = "127.0.0.1"
    PORTA_PADRAO = 10097
    # Prazos, cada um com o seu nome (além do enunciado, que supõe que ninguém trava):
    FATIA = 0.5              # esperas em fatias: no Windows um accept() bloqueado ignora Ctrl+C
    PRAZO_CONEXAO = 3.0      # para conectar ao líder e encaminhar um PUT
    # Para o canal de replicação: com o líder fora, o seguidor tenta de novo a cada
    # PRAZO_CONEXAO_CANAL + INTERVALO_REJOIN, e uma tentativa entra logo que ele volta.
    PRAZO_CONEXAO_CANAL = 1.0
    PRAZO_LINHA = 10.0       # para terminar uma linha já começada, ou enviar uma resposta grande
    FATIA_ENVIO = 0.05       # o resto de uma REPLICATION grande vai aos seguidores nestas fatias
    # Keepalive do TCP (ocioso, intervalo, sondas, em s): o outro lado de uma conexão cuja
    # máquina sumiu (sem FIN nem RST) é dado como morto em PRAZO_VIVO s, sem pedido nenhum.
    KEEPALIVE = (("TCP_KEEPIDLE", 1), ("TCP_KEEPINTVL", 1), ("TCP_KEEPCNT", 3))
    PRAZO_VIVO = 4.0
    FILA_DE_CONEXOES = 4096  # conexões esperando o accept (o sistema pode limitar a menos)
    # Erros de uma falta deste processo (descritores, memória, portas), não do outro lado.
    FALTAS_LOCAIS = {getattr(errno, nome) for nome in ("EMFILE", "ENFILE", "ENOBUFS", "ENOMEM",
                     "EADDRNOTAVAIL", "WSAEMFILE", "WSAENOBUFS") if hasattr(errno, nome)}
    # Seguidor que não confirma uma REPLICATION neste prazo sai e os PUTs seguem; maior que
    # ATRASO_MAXIMO, para o seguidor lento da demonstração nunca sair (--prazo-replicacao).
    PRAZO_REPLICACAO = 40.0
    PRAZO_REPLICACAO_MAXIMO = 600.0
    ATRASO_MAXIMO = 30.0     # maior --atraso-replicacao aceito
    INTERVALO_REJOIN = 0.5   # entre tentativas do seguidor de entrar no líder
    ESPERA_APOS_RECUSA = 5.0  # líder que recusou o JOIN: o seguidor tenta de novo com calma
    # Líder que acabou de subir: espera no máximo isto antes do primeiro timestamp, se nenhum
    # JOIN estiver chegando. Um seguidor vivo tenta a cada PRAZO_CONEXAO_CANAL mais
    # INTERVALO_REJOIN (no Windows uma conexão recusada leva uns 2 s): entra em 1 a 2 s.
    ESPERA_HISTORIA = 3.0
    # Uma fusão não leva o contador do líder acima disto: sobra espaço nos 64 bits.
    MAIOR_CONTADOR_JOIN = Mensagem.MAIOR_TIMESTAMP // 2
    MAXIMO_IDS = 100000      # ids de PUT lembrados para reconhecer um PUT repetido
    PRAZO_SAIDA = 1.0        # ao sair, espera no máximo isto por um console pausado
    INTERVALO_CONSOLE = 0.004  # com linhas chegando, o Console as escreve a cada 4 ms
    RESPOSTA_PEQUENA = 64 * 1024  # uma resposta até este tamanho cabe no buffer do sistema
    NO_LIMITE = "Sem %s livres: conexões novas são fechadas até algumas terminarem."
    USO = ("uso: python Servidor.py [IP PORTA IP_DO_LIDER PORTA_DO_LIDER]"
           " [--atraso-replicacao SEGUNDOS] [--dados PASTA] [--fsync]"
           " [--prazo-replicacao SEGUNDOS] [--detalhes]")

    def __init__(self, ip, porta, ip_lider, porta_lider, atraso_replicacao=0.0, dados=None,
                 fsync=False, prazo_replicacao=None, detalhes=False):
        self.ip = ip
        self.porta = porta
        self.endereco = "%s:%d" % (ip, porta)
        self.lider = (ip_lider, porta_lider)
        self.endereco_lider = "%s:%d" % self.lider
        self.eh_lider = Servidor.mesmo_servidor((ip, porta), self.lider)
        self.atraso_replicacao = atraso_replicacao
        self.prazo_replicacao = prazo_replicacao or Servidor.PRAZO_REPLICACAO
        self.detalhes = detalhes
        # A tabela: key -> (value, timestamp). Entradas são trocadas, nunca alteradas.
        self.tabela = {}
        # Líder: o contador lógico global (como o zxid do ZooKeeper); invariante: nunca abaixo
        # de um timestamp da tabela (gravar_e_replicar soma 1; fundir sobe até o que o JOIN traz).
        self.contador = 0
        # Seguidor: o maior timestamp que ele já recebeu (vai no JOIN).
        self.maior_ts = 0
        self.trava_put = threading.Lock()
        self.trava_tabela = threading.Lock()
        self.trava_confirmacoes = threading.Lock()
        # Líder: origem "ip:porta" -> o CanalDoSeguidor de cada seguidor conectado.
        self.seguidores = {}
        # Líder: PUTs esperando confirmações, em ordem de ts: (ts, origens no PUT, evento).
        self.esperas = collections.deque()
        self.parar = threading.Event()
        self.ouvinte = None
        self.console = Servidor.Console()
        self.avisados = set()
        # Fora do enunciado (veja as partes do fim): ids de PUT, recuperação, registro em disco.
        self.ids = collections.OrderedDict()
        self.proprias = set()
        self.historia_ouvida = threading.Event()
        self.subida = time.monotonic()
        self.chegando = set()
        self.fundidos = set()
        self.pasta = dados
        self.fsync = fsync
        self.registro = None
        self.linhas_registro = 0
        self.tamanho_bom = None  # o tamanho a que o registro volta, se a volta de antes falhou
        # Tabela de despacho: tipo -> tratador; um tipo fora dela recebe ERRO (despachar). O
        # JOIN não está aqui: ele faz da conexão um canal de replicação (Conexao.run).
        self.tratadores = {
            Mensagem.PUT: self.tratar_put if self.eh_lider else self.encaminhar_put,
            Mensagem.GET: self.tratar_get,
            Mensagem.REPLICATION: self.recusar_fora_do_canal,
            Mensagem.JOIN_OK: self.recusar_fora_do_canal,
        }

    # ==================================================================================
    # 5a. Inicialização
    # ==================================================================================

    # [5a] Inicialização: IP e porta deste servidor e do líder, lidos do teclado.
    @staticmethod
    def perguntar_tudo():
        """As quatro perguntas: (ip, porta, porta de escuta aberta, ip do líder, porta dele)."""
        aberta = None
        while aberta is None:
            ip = Servidor.perguntar("IP", Servidor.IP_PADRAO, Servidor.ler_ip)
            aberta = Servidor.perguntar_porta(ip)
        ip_lider = Servidor.perguntar("IP do líder", Servidor.IP_PADRAO, Servidor.ler_ip)
        porta_lider = Servidor.perguntar("Porta do líder", Servidor.PORTA_PADRAO,
                                         Servidor.ler_porta)
        return (ip,) + aberta + (ip_lider, porta_lider)

    def abrir(self, ouvinte=None):
        """Abre a porta de escuta (OSError se não der; ou usa a já aberta), o registro em
        disco e, no seguidor, o canal com o líder."""
        self.ouvinte = ouvinte or Servidor.abrir_porta(self.ip, self.porta)
        # [threads] Uma thread escreve no console.
        self.console.start()
        if self.eh_lider:
            if self.pasta is not None:
                self.recuperar_registro()
            self.subida = time.monotonic()  # a espera pela história conta daqui
        else:
            # [threads] Uma thread mantém o canal de replicação com o líder.
            Servidor.CanalDoLider(self).start()

    # ==================================================================================
    # 5b. Conexões simultâneas: uma thread por conexão
    # ==================================================================================

    # [5b] Atende conexões simultâneas: uma thread (Conexao) por conexão aceita.
    def servir(self):
        """Laço de accept até parar; o prazo curto deixa Ctrl+C funcionar no Windows."""
        reserva = socket.socket()  # um descritor guardado para o limite (recusar_no_limite)
        while not self.parar.is_set():
            try:
                sock, endereco = self.ouvinte.accept()
            except socket.timeout:
                continue
            except OSError as erro:
                reserva = self.recusar_no_limite(erro, reserva)
                continue
            self.avisados.discard("limite")  # o próximo limite é dito de novo
            try:
                # [threads] Cada conexão ganha a sua thread.
                Servidor.Conexao(self, sock, endereco).start()
            except RuntimeError:
                sock.close()  # sem memória para outra thread: recusa esta conexão
                self.avisar_uma_vez("limite", Servidor.NO_LIMITE % "threads")

    def despachar(self, pedido, conexao):
        """Chama o tratador do tipo; tipo sem tratador (uma resposta, p. ex.) recebe ERRO."""
        tratador = self.tratadores.get(pedido.tipo)
        if tratador is None:
            return Mensagem(Mensagem.ERRO, value="%s não é um pedido" % pedido.tipo)
        try:
            return tratador(pedido, conexao)
        except OSError:
            raise  # rede: encerra esta conexão
        except Exception as erro:  # defeito nosso: esta conexão não derruba o resto
            self.avisar("Erro interno ao tratar %s: %r" % (pedido.tipo, erro))
            return Mensagem(Mensagem.ERRO, value="erro interno do servidor")

    class Conexao(threading.Thread):
        """Serve uma conexão aceita: lê um pedido, chama o tratador, responde, até ela fechar.

        Um JOIN faz da conexão o canal de replicação de um seguidor: ela passa ao
        CanalDoSeguidor dele, e esta thread termina sem fechá-la.
        """

        def __init__(self, servidor, sock, endereco):
            super().__init__(daemon=True, name="conexao-%s:%d" % endereco[:2])
            self.servidor = servidor
            self.sock = sock
            self.cliente = "%s:%d" % endereco[:2]
            # Seguidor: conexão própria ao líder para encaminhar PUTs, aberta no primeiro.
            self.encaminhamento = None

        def run(self):
            servidor = self.servidor
            leitor = None
            entregue = False
            try:
                Servidor.preparar(self.sock)
                leitor = self.sock.makefile("rb", buffering=64 * 1024)
                while True:
                    servidor.chegando.discard(self)
                    try:
                        pedido = servidor.ler_pedido(self, leitor)
                    except ValueError as erro:
                        # Linha inválida: ERRO e segue; a linha inteira já foi consumida.
                        Mensagem(Mensagem.ERRO, value=str(erro)).enviar(self.sock)
                        continue
                    except socket.timeout:
                        # Linha começada e não terminada: ERRO e fecha (o leitor ficou inválido).
                        erro = "linha incompleta por mais de %g s" % Servidor.PRAZO_LINHA
                        Mensagem(Mensagem.ERRO, value=erro).enviar(self.sock)
                        break
                    if pedido is None:
                        break
                    if pedido.tipo == Mensagem.JOIN:
                        entregue = servidor.receber_seguidor(pedido, self, leitor)
                        if entregue:
                            break
                        continue
                    Servidor.responder(self.sock, servidor.despachar(pedido, self))
            except OSError:
                pass  # o outro lado caiu ou fechou: nada a responder
            finally:
                servidor.chegando.discard(self)
                if self.encaminhamento is not None:
                    Servidor.fechar_conexao(self.encaminhamento)
                if leitor is not None:
                    leitor.close()  # o socket só fecha de fato quando o leitor também fecha
                if not entregue:
                    self.sock.close()

    # ==================================================================================
    # 5c. PUT: o líder grava e replica; o seguidor encaminha ao líder
    # ==================================================================================

    # [5c] Recebe PUT no líder: grava com o próximo timestamp, replica, e responde.
    def tratar_put(self, pedido, conexao):
        """PUT no líder: timestamp global, grava, replica e só então responde PUT_OK."""
        cliente = Mensagem.mostrar(pedido.origem or conexao.cliente)
        self.escrever("Cliente %s PUT key:%s value:%s"
                      % (cliente, Mensagem.mostrar(pedido.key), Mensagem.mostrar(pedido.value)))
        self.esperar_historia()  # além do enunciado: um líder que acabou de subir
        with self.trava_put:
            try:
                # Um PUT repetido (mesmo id) não grava de novo: além do enunciado.
                timestamp = self.id_repetido(pedido) or \
                    self.gravar_e_replicar(pedido.key, pedido.value, pedido.id)
            except ValueError as erro:
                return Mensagem(Mensagem.ERRO, value=str(erro))
            except OSError as erro:  # o registro em disco (--dados) falhou
                self.avisar("Erro ao gravar o registro em disco: %s." % (erro.strerror or erro))
                return Mensagem(Mensagem.ERRO, value="o líder não conseguiu gravar no disco; "
                                "o PUT pode ou não ter sido feito")
            origens = list(self.seguidores)
        # [5e] PUT_OK só depois do REPLICATION_OK de todos os seguidores conectados.
        self.esperar_confirmacoes(timestamp, origens)
        self.escrever("Enviando PUT_OK ao Cliente %s da key:%s ts:%d"
                      % (cliente, Mensagem.mostrar(pedido.key), timestamp))
        return Mensagem(Mensagem.PUT_OK, key=pedido.key, value=pedido.value, timestamp=timestamp,
                        id=pedido.id)

    def gravar_e_replicar(self, key, value, id_put):
        """Sob a trava_put: o próximo timestamp, o disco, a tabela e a REPLICATION a cada canal.

        Enviar sob a trava mantém a ordem total no fio sem filas. Um OSError só vem do disco:
        o timestamp fica gasto (nunca é dado duas vezes) e nada mais muda.
        """
        self.contador += 1
        timestamp = self.contador
        linha = Mensagem(Mensagem.REPLICATION, key=key, value=value,
                         timestamp=timestamp).para_linha()
        # O registro vem antes de tudo: o que a tabela ou um seguidor tem, o disco também tem.
        self.registrar(linha)
        # [5c] Insere (value, timestamp) na tabela de hash local; se a key já existe, troca o
        # value e o timestamp (enunciado, seção 5c, item 1).
        with self.trava_tabela:
            self.tabela[key] = (value, timestamp)

        self.proprias.add(key)
        self.lembrar_id(id_put, key, value, timestamp)
        if self.linhas_registro > 2 * len(self.tabela) + 1000:
            # Depois da tabela: a compactação grava a tabela com esta escrita dentro.
            self.compactar_ou_avisar()
        # [5c] Replica (key, value, timestamp) nos seguidores com a mensagem REPLICATION.
        self.replicar(linha, (timestamp,), self.seguidores.values())
        return timestamp

    def replicar(self, linha, timestamps, seguidores):
        """Sob a trava_put: as REPLICATIONs da linha (uma ou mais, de timestamps) pelo canal de
        cada seguidor (enviar_aos_seguidores)."""
        agora = time.monotonic()
        for seguidor in seguidores:
            # Anota antes de enviar: a confirmação pode chegar antes de o envio voltar.
            seguidor.pendentes.extend((ts, agora) for ts in timestamps)
        self.enviar_aos_seguidores([(seguidor, linha) for seguidor in seguidores])

    # [5c] Recebe PUT num seguidor: encaminha ao líder e devolve a resposta dele ao cliente.
    def encaminhar_put(self, pedido, conexao):
        """Seguidor: passa o PUT ao líder com a origem do cliente e devolve a resposta dele.

        Sem prazo para a resposta: o líder responde assim que os seguidores confirmam (e
        retira quem para de confirmar); um líder que cai fecha a conexão, e um cuja máquina
        sumiu é achado pelo keepalive (preparar).
        """
        if pedido.origem is not None:
            # Já encaminhado por outro servidor: encaminhar de novo daria voltas sem fim.
            self.avisar_uma_vez("encaminhado", "PUT encaminhado a este servidor, que não é o "
                                "líder; confira a configuração (o líder daqui é %s)."
                                % self.endereco_lider)
            return Mensagem(Mensagem.ERRO, value="este servidor não é o líder; o líder que ele "
                            "conhece é %s" % self.endereco_lider)
        self.escrever("Encaminhando PUT key:%s value:%s"
                      % (Mensagem.mostrar(pedido.key), Mensagem.mostrar(pedido.value)))
        pedido.origem = conexao.cliente
        enviado = False
        try:
            sock, leitor = self.pegar_encaminhamento(conexao)
            Servidor.com_prazo(sock, Servidor.PRAZO_LINHA, lambda: pedido.enviar(sock))
            enviado = True
            resposta = Mensagem.receber(leitor, limite=Mensagem.LIMITE_RESPOSTA)
            if resposta is not None:
                return resposta
        except OSError as erro:
            if not enviado and erro.errno in Servidor.FALTAS_LOCAIS:
                # A falta é daqui (sem descritores), não do líder: fecha a conexão do
                # cliente, que tenta outro servidor.
                self.avisar_uma_vez("limite", Servidor.NO_LIMITE % "descritores")
                raise
        except ValueError:
            pass
        if conexao.encaminhamento is not None:   # sem resposta: a conexão não serve mais
            Servidor.fechar_conexao(conexao.encaminhamento)
            conexao.encaminhamento = None
        # O ERRO diz ao cliente se o PUT pode ter sido feito.
        situacao = "%s %s" % (self.endereco_lider, "não respondeu; o PUT pode ou não ter sido "
                              "feito" if enviado else "está fora do ar; o PUT não foi feito")
        self.avisar("Líder %s (key:%s)." % (situacao, Mensagem.mostrar(pedido.key)))
        return Mensagem(Mensagem.ERRO, value="o líder " + situacao)

    # ==================================================================================
    # 5d. REPLICATION: o seguidor aplica o que o líder manda
    # ==================================================================================

    def receber_replicacoes(self, sock, leitor):
        """Seguidor: aplica as REPLICATIONs do canal, em ordem, e confirma cada uma."""
        resto = bytearray()
        while True:
            # Tudo o que já chegou é aplicado em ordem e confirmado junto, num sendall só:
            # o líder manda várias REPLICATIONs de uma vez sob carga.
            pedidos = Mensagem.receber_lote(leitor, resto)
            if pedidos is None:
                return
            if self.atraso_replicacao > 0:
                # Demonstração: cada REPLICATION confirmada assim que aplicada.
                for pedido in pedidos:
                    self.aplicar_replicacao(pedido).enviar(sock)
            elif pedidos:
                sock.sendall(b"".join(self.aplicar_replicacao(p).para_linha() for p in pedidos))

    # [5d] Recebe REPLICATION: aplica (salvo se já tem mais novo) e responde REPLICATION_OK.
    def aplicar_replicacao(self, pedido):
        """Seguidor, só no canal com o líder: aplica a REPLICATION e devolve REPLICATION_OK."""
        if pedido.tipo != Mensagem.REPLICATION:
            raise ValueError("o líder enviou %s no canal de replicação" % pedido.tipo)
        if self.atraso_replicacao > 0:
            # Atraso de demonstração: deixa ver TRY_OTHER_SERVER_OR_LATER (enunciado, seção 9).
            self.parar.wait(self.atraso_replicacao)
        with self.trava_tabela:
            atual = self.tabela.get(pedido.key)
            if atual is None or atual[1] <= pedido.timestamp:
                self.tabela[pedido.key] = (pedido.value, pedido.timestamp)
            self.maior_ts = max(self.maior_ts, pedido.timestamp)
        # A linha sai quando a REPLICATION é aplicada: o console nunca mostra um ts que o
        # servidor ainda não tem.
        self.escrever("REPLICATION key:%s value:%s ts:%d"
                      % (Mensagem.mostrar(pedido.key), Mensagem.mostrar(pedido.value),
                         pedido.timestamp))
        return Mensagem(Mensagem.REPLICATION_OK, key=pedido.key, timestamp=pedido.timestamp)

    class CanalDoLider(threading.Thread):
        """Seguidor: abre o canal de replicação com o líder (JOIN) e aplica cada REPLICATION
        que chega por ele; se o canal cai, abre de novo."""

        def __init__(self, servidor):
            super().__init__(daemon=True, name="canal-do-lider")
            self.servidor = servidor

        def run(self):
            servidor = self.servidor
            recusa_dita = join = tabela = None
            while not servidor.parar.is_set():
                pausa = Servidor.INTERVALO_REJOIN
                try:
                    if servidor.tabela is not tabela:
                        # Sem canal a tabela não muda (só a cópia do líder a troca): o JOIN é
                        # montado uma vez por canal perdido, antes de conectar, e sai inteiro
                        # logo depois do connect, por maior que seja.
                        tabela = servidor.tabela
                        join = servidor.pedir_join().para_linha()
                    # [5a] O seguidor entra no líder: JOIN com a tabela e o maior ts dele, e a
                    # cópia da tabela do líder instalada e confirmada.
                    sock, leitor = servidor.entrar_no_lider(join)
                    recusa_dita = None
                    try:
                        servidor.receber_replicacoes(sock, leitor)
                    finally:
                        leitor.close()
                        sock.close()
                except OSError:
                    pass  # líder fora do ar ou caiu: tenta de novo
                except ValueError as erro:
                    # O líder recusou o JOIN ou falou fora do protocolo: diz uma vez só, e
                    # tenta de novo com calma (cada JOIN leva a tabela inteira).
                    pausa = Servidor.ESPERA_APOS_RECUSA
                    if str(erro) != recusa_dita:
                        recusa_dita = str(erro)
                        servidor.avisar("Canal com o líder %s recusado: %s"
                                        % (servidor.endereco_lider, Mensagem.mostrar(str(erro))))
                servidor.parar.wait(pausa)

    # ==================================================================================
    # 5e. REPLICATION_OK: o líder responde PUT_OK quando todos confirmaram
    # ==================================================================================

    # [5e] Recebe REPLICATION_OK: confirma, em ordem, as REPLICATIONs mais antigas do canal.
    def confirmar(self, seguidor, linhas):
        """Líder: aplica os REPLICATION_OK lidos; devolve o motivo para derrubar, ou None."""
        with self.trava_confirmacoes:
            for linha in linhas:
                try:
                    confirmacao = Mensagem.de_linha(linha)
                except ValueError as erro:
                    return "linha inválida no canal (%s)" % erro
                esperado = seguidor.pendentes[0][0] if seguidor.pendentes else None
                if confirmacao.tipo != Mensagem.REPLICATION_OK or \
                        confirmacao.timestamp != esperado:
                    return "%s ts:%s fora de ordem no canal" % (confirmacao.tipo,
                                                                 confirmacao.timestamp)
                seguidor.pendentes.popleft()
                # max: uma fusão manda keys com ts abaixo do já confirmado (e em ordem, atrás).
                seguidor.confirmado = max(seguidor.confirmado, confirmacao.timestamp)
            self.liberar_confirmados()
        return None

    def esperar_confirmacoes(self, timestamp, origens):
        """Dorme, fora das travas, até cada seguidor de origens (conectado no PUT, e ainda
        conectado) confirmar o timestamp. Sem prazo fixo: espera quem confirma, mesmo devagar;
        quem para de confirmar sai no prazo de replicação, e a espera acaba."""
        pronto = threading.Event()  # aberto por liberar_confirmados
        with self.trava_confirmacoes:
            lugar = len(self.esperas)
            while lugar and self.esperas[lugar - 1][0] > timestamp:   # quase sempre no fim
                lugar -= 1
            self.esperas.insert(lugar, (timestamp, origens, pronto))
            self.liberar_confirmados()
        pronto.wait()

    def liberar_confirmados(self):
        """Sob a trava_confirmacoes: acorda, em ordem de timestamp, cada PUT já confirmado por
        todos, até o primeiro que não está: os seguintes saem depois dele (PUT_OK em ordem), e
        uma confirmação custa os PUTs que ela libera, não todos os que esperam."""
        while self.esperas and self.confirmado_por_todos(*self.esperas[0][:2]):
            self.esperas.popleft()[2].set()

    def confirmado_por_todos(self, timestamp, origens):
        """Sob a trava_confirmacoes: a regra da seção 5e. Cada seguidor conectado quando o PUT
        foi gravado já confirmou o timestamp, ou saiu (e então não conta mais)."""
        for origem in origens:
            seguidor = self.seguidores.get(origem)
            if seguidor is not None and seguidor.confirmado < timestamp:
                return False
        return True

    class CanalDoSeguidor(threading.Thread):
        """Líder: lê, em ordem, os REPLICATION_OK de um seguidor conectado. Só lê (quem envia,
        sob a trava_put, usa enviar_aos_seguidores), por uma cópia do socket (dup) com prazo
        de uma FATIA: o recv volta a cada fatia para conferir o prazo do seguidor (limite),
        sem mexer no prazo de quem envia (as duas cópias ficam não bloqueantes no sistema)."""

        def __init__(self, servidor, sock, origem, timestamp):
            super().__init__(daemon=True, name="canal-do-seguidor-%s" % origem)
            self.servidor = servidor
            self.sock = sock
            self.origem = origem
            # O maior ts que o seguidor confirmou (a cópia da tabela conta), e os enviados sem
            # confirmação, em ordem: (ts, instante do envio).
            self.confirmado = timestamp
            self.pendentes = collections.deque()
            self.progresso = time.monotonic()  # a última confirmação lida
            # Por que quem envia derrubou o canal (um envio preso que passou do prazo).
            self.motivo = None

        def run(self):
            servidor = self.servidor
            resto = bytearray()
            motivo = None
            copia = None
            try:
                copia = self.sock.dup()
                copia.settimeout(Servidor.FATIA)
                while motivo is None:
                    try:
                        dados = copia.recv(64 * 1024)
                    except socket.timeout:
                        dados = None  # uma fatia sem nada: só confere o prazo
                    if dados == b"":
                        break  # o seguidor fechou o canal
                    if dados:
                        inicio = len(resto)
                        resto += dados
                        linhas = Mensagem.cortar_linhas(resto, inicio)
                        if linhas:
                            motivo = servidor.confirmar(self, linhas)
                            self.progresso = time.monotonic()
                        if len(resto) > Mensagem.LIMITE_RESPOSTA:
                            # O REPLICATION_OK leva a key, que pode ter até 16 MiB.
                            motivo = "linha longa demais no canal"
                    if motivo is None and self.pendentes and \
                            time.monotonic() > servidor.limite(self):
                        motivo = "não confirmou a REPLICATION ts:%d em %g s" % (
                            self.pendentes[0][0], servidor.prazo_replicacao)
            except OSError:
                pass  # o seguidor caiu
            finally:
                if copia is not None:
                    copia.close()
                motivo = motivo or self.motivo
                if motivo is not None:
                    servidor.avisar("Seguidor %s retirado: %s. Ele volta quando refizer o JOIN."
                                    % (self.origem, motivo))
                servidor.retirar(self)
                servidor.detalhar("seguidor %s saiu do conjunto." % self.origem)

    # ==================================================================================
    # 5f. GET, em qualquer servidor
    # ==================================================================================

    # [5f] Recebe GET: devolve o valor só se o ts do servidor não for menor que o do cliente.
    def tratar_get(self, pedido, conexao):
        """GET em qualquer servidor: valor (ou NULL) e ts, ou TRY_OTHER_SERVER_OR_LATER."""
        with self.trava_tabela:
            value, timestamp = self.tabela.get(pedido.key, (None, 0))
        # A regra da seção 5f, em todo servidor e estado (seguidor sem líder, líder que acabou
        # de subir): nunca devolve um ts menor que o que o cliente mandou para a key.
        if timestamp >= pedido.timestamp:
            resposta = Mensagem(Mensagem.GET_OK, key=pedido.key, value=value, timestamp=timestamp)
            devolvido = Mensagem.mostrar(value)
        else:
            resposta = Mensagem(Mensagem.TRY_OTHER_SERVER_OR_LATER, key=pedido.key,
                                timestamp=timestamp)
            devolvido = Mensagem.TRY_OTHER_SERVER_OR_LATER
        self.escrever("Cliente %s GET key:%s ts:%d. Meu ts é %d, portanto devolvendo %s"
                      % (conexao.cliente, Mensagem.mostrar(pedido.key), pedido.timestamp,
                         timestamp, devolvido))
        return resposta

    # ==================================================================================
    # Além do enunciado (1): o console, escrito por uma thread
    # ==================================================================================
    # stdout tem só as linhas da seção 6 do enunciado. Elas vão para uma fila que a thread
    # Console escreve, em ordem: no Windows, um clique no console o pausa (modo de seleção) e
    # um print pararia quem o chamou; assim, um console pausado atrasa só as próprias linhas.

    def escrever(self, linha):
        """Uma linha da seção 6 do enunciado no console (pela thread Console)."""
        self.enfileirar(sys.stdout, linha)

    def avisar(self, linha):
        """Uma linha de erro para a pessoa, em stderr (stdout só tem as linhas da seção 6)."""
        self.enfileirar(sys.stderr, linha)

    def enfileirar(self, saida, linha):
        self.console.fila.append((saida, linha))
        if self.console.parada:
            self.console.aviso.set()  # só acorda o Console se ele está dormindo

    def detalhar(self, linha):
        """Com --detalhes: a entrada e a saída de seguidores e as fusões, em stderr (para
        acompanhar o cluster e para os testes; fora disso, nada disto aparece)."""
        if self.detalhes:
            self.avisar("Detalhe: " + linha)

    def avisar_uma_vez(self, assunto, linha):
        if assunto not in self.avisados:
            self.avisados.add(assunto)
            self.avisar(linha)

    class Console(threading.Thread):
        """Escreve as linhas do console, em ordem, poucos milissegundos depois do evento: um
        console pausado (no Windows, o modo de seleção do Prompt) atrasa só as próprias linhas,
        nunca o cluster."""

        def __init__(self):
            super().__init__(daemon=True, name="console")
            # (saída, linha) em ordem; (None, None) encerra.
            self.fila = collections.deque()
            # Com a fila vazia, esta thread dorme no aviso (parada) e quem enfileira a acorda: a
            # primeira linha sai na hora, e parado não gasta CPU. Com linhas chegando, ela volta
            # à fila a cada INTERVALO_CONSOLE (um aviso por linha custaria uma troca de thread).
            self.aviso = threading.Event()
            self.parada = False

        def run(self):
            while True:
                if not self.fila:
                    # A ordem importa: quem enfileira depois de ver parada abre o aviso, e
                    # quem enfileirou antes já está na fila conferida aqui.
                    self.parada = True
                    self.aviso.clear()
                    if not self.fila:
                        self.aviso.wait()
                    self.parada = False
                while self.fila:
                    saida, linha = self.fila.popleft()
                    if saida is None:
                        return
                    linhas = [linha]
                    while self.fila and self.fila[0][0] is saida:
                        linhas.append(self.fila.popleft()[1])
                    try:
                        print("\n".join(linhas), file=saida, flush=True)
                    except (OSError, ValueError):
                        pass  # console fechado: o servidor continua servindo
                time.sleep(Servidor.INTERVALO_CONSOLE)

    # ==================================================================================
    # Além do enunciado (2): como um seguidor entra no líder (JOIN)
    # ==================================================================================
    # O enunciado não diz como o líder conhece os seguidores. Aqui o seguidor abre a conexão
    # (como no ZooKeeper) e manda JOIN com a tabela e o maior ts que tem; o líder funde (parte
    # 3) e responde JOIN_OK com uma cópia da tabela, que o seguidor instala e confirma; daí em
    # diante cada REPLICATION vai por essa conexão. O líder não precisa de lista de
    # seguidores, a ordem de partida não importa, e quem cai e volta recebe tudo de novo.

    def entrar_no_lider(self, join):
        """Seguidor: conecta no líder, manda o JOIN (a linha já montada), instala a cópia e a
        confirma; devolve (socket, leitor) do canal. OSError: sem líder; ValueError: recusado."""
        try:
            sock = self.conectar(Servidor.PRAZO_CONEXAO_CANAL)
        except OSError as erro:
            # Sem líder, o seguidor fica calado (enunciado, seção 6: só as linhas pedidas);
            # um líder digitado errado aparece no ERRO do primeiro PUT por este seguidor.
            if self.detalhes:
                self.avisar_uma_vez("sem-lider", "Detalhe: sem contato com o líder %s (%s); "
                                    "tentando de novo." % (self.endereco_lider,
                                                           erro.strerror or erro))
            raise
        self.avisados.discard("sem-lider")  # a próxima falta é dita de novo
        try:
            sock.settimeout(self.prazo_replicacao)
            leitor = sock.makefile("rb")
            sock.sendall(join)
            # Sem limite de linha: só o líder fala aqui, e a cópia passa de 16 MiB.
            timestamp = self.instalar_snapshot(Mensagem.receber(leitor, limite=None))
            Mensagem(Mensagem.REPLICATION_OK, timestamp=timestamp).enviar(sock)
            # Daqui em diante o líder fala quando há PUT: espera sem prazo.
            sock.settimeout(None)
            return sock, leitor
        except Exception:
            sock.close()
            raise

    def pedir_join(self):
        """Seguidor: o JOIN leva o endereço, o maior ts e a tabela inteira (o líder que
        reiniciou recupera dela o que perdeu, de qualquer tamanho até Mensagem.LIMITE_JOIN)."""
        with self.trava_tabela:
            dados = dict(self.tabela)  # os pares (value, ts) viajam como listas JSON
            maior_ts = self.maior_ts
        return Mensagem(Mensagem.JOIN, origem=self.endereco, timestamp=maior_ts,
                        dados=dados or None)

    def instalar_snapshot(self, resposta):
        """Seguidor: a tabela passa a ser a cópia do JOIN_OK; devolve o timestamp dela."""
        if resposta is None:
            raise OSError("o líder fechou o canal")
        if resposta.tipo != Mensagem.JOIN_OK:
            raise ValueError(resposta.value if resposta.tipo == Mensagem.ERRO
                             else "resposta %s ao JOIN" % resposta.tipo)
        tabela = Servidor.tabela_de(resposta.dados)
        with self.trava_tabela:
            if resposta.timestamp < self.maior_ts:
                # Nunca se esvazia por engano: os dados daqui são mais novos que os do líder.
                raise ValueError("o snapshot do líder (%d) é mais velho que o daqui (%d)"
                                 % (resposta.timestamp, self.maior_ts))
            self.tabela = tabela
            self.maior_ts = resposta.timestamp
        return resposta.timestamp

    @staticmethod
    def replications(entradas):
        """As linhas das REPLICATIONs de [(ts, key, value)], juntas, na ordem dada."""
        return b"".join(Mensagem(Mensagem.REPLICATION, key=key, value=value,
                                 timestamp=ts).para_linha() for ts, key, value in entradas)

    @staticmethod
    def tabela_de(dados):
        """O "dados" de um JOIN_OK ou do snapshot em disco (key -> [value, ts]) como tabela
        (key -> (value, ts)). No outro sentido não há conversão: a tupla vira lista no JSON."""
        return {key: (value, ts) for key, (value, ts) in dados.items()}

    def receber_seguidor(self, pedido, conexao, leitor):
        """Líder: JOIN -> fusão -> JOIN_OK com a cópia -> REPLICATION_OK dele -> conectado.
        Devolve True se a conexão virou canal de replicação (a Conexao não a fecha). A cópia
        vai e é confirmada fora da trava_put: um seguidor lento ou falso não segura os PUTs."""
        sock = conexao.sock
        recusa = self.recusar_join(pedido)
        if recusa is None:
            with self.trava_put:
                recusa = self.fundir(pedido)
                # Entradas não mudam (são trocadas): a cópia rasa fixa um instante. Os pares
                # (value, ts) viajam como listas JSON: a cópia já é o "dados" do JOIN_OK.
                tabela, timestamp = self.tabela, self.contador
                snapshot = dict(tabela) if recusa is None else None
        self.chegando.discard(conexao)
        if recusa is not None:
            recusa.enviar(sock)
            return False
        # A cópia tem o prazo de replicação; conectado, o canal envia por enviar_aos_seguidores.
        sock.settimeout(self.prazo_replicacao)
        Mensagem(Mensagem.JOIN_OK, dados=snapshot, timestamp=timestamp).enviar(sock)
        try:
            confirmacao = Mensagem.receber(leitor)
        except ValueError:
            confirmacao = None
        if confirmacao is None or confirmacao.tipo != Mensagem.REPLICATION_OK or \
                confirmacao.timestamp != timestamp:
            raise ConnectionError("o seguidor não confirmou o snapshot")
        self.unir(pedido.origem, sock, tabela, timestamp)
        return True

    def recusar_join(self, pedido):
        """O ERRO para um JOIN que não pode entrar em líder nenhum, ou None."""
        if not self.eh_lider:
            return Mensagem(Mensagem.ERRO,
                            value="este servidor é seguidor; o líder é %s" % self.endereco_lider)
        ip, _, porta = pedido.origem.rpartition(":")
        if Servidor.mesmo_servidor((ip, int(porta)), (self.ip, self.porta)):
            return Mensagem(Mensagem.ERRO, value="JOIN com o endereço do próprio líder")
        return None

    def unir(self, origem, sock, tabela, timestamp):
        """Pega a trava_put: manda como REPLICATION o que entrou depois da cópia e conecta o
        seguidor, no lugar do canal antigo do mesmo endereço, se havia."""
        with self.trava_put:
            if self.tabela is not tabela:
                # fundir troca o dicionário inteiro: outro JOIN foi fundido e esta cópia
                # ficou velha. O seguidor refaz o JOIN e recebe a tabela fundida.
                raise ConnectionError("a tabela mudou por uma fusão durante o JOIN")
            seguidor = Servidor.CanalDoSeguidor(self, sock, origem, timestamp)
            novos = sorted((ts, key, value) for key, (value, ts) in self.tabela.items()
                           if ts > timestamp)
            sock.settimeout(0)  # daqui em diante, todo envio passa por enviar_aos_seguidores
            self.replicar(Servidor.replications(novos), [ts for ts, _, _ in novos], [seguidor])
            # [threads] Uma thread por seguidor conectado lê os REPLICATION_OK dele. Começa
            # antes de o seguidor entrar em seguidores: se não começar, nenhum PUT espera por
            # ele; se ela já terminar, o retirar dela espera esta trava e o acha lá.
            try:
                seguidor.start()
            except RuntimeError:
                raise ConnectionError("sem memória para a thread do canal") from None
            with self.trava_confirmacoes:
                antigo = self.seguidores.get(origem)
                self.seguidores[origem] = seguidor
                self.liberar_confirmados()
        self.detalhar("seguidor %s unido no ts %d." % (origem, timestamp))
        if antigo is not None:
            Servidor.derrubar(antigo.sock)

    def recusar_fora_do_canal(self, pedido, conexao):
        """REPLICATION e JOIN_OK na porta de escuta: ninguém escreve por fora do líder."""
        return Mensagem(Mensagem.ERRO, value="%s só é aceito no canal que o seguidor abre ao "
                        "líder" % pedido.tipo)

    # ==================================================================================
    # Além do enunciado (3): o líder que reinicia (fusão) e o PUT repetido (id)
    # ==================================================================================
    # O enunciado supõe que ninguém cai. Um líder que volta (vazio, ou de uma pasta --dados
    # velha) não sabe até onde os seguidores foram: cada JOIN traz a tabela e o maior ts do
    # seguidor, e o líder funde (fundir), como o novo líder do ZooKeeper sincroniza a partir do
    # maior zxid. Até ouvir essa história, não dá timestamp nenhum (esperar_historia): daria
    # números que ela também tem (enunciado, seção 5f: "NUNCA um value anterior ao que já
    # viu"). Fora do alcance disto: um seguidor calado além da espera, ou mais adiantado que
    # o primeiro fundido, até refazer o JOIN; e vários reinícios seguidos (um ts não diz de
    # qual líder veio).

    def esperar_historia(self):
        """Líder que acabou de subir: nenhum timestamp antes de ouvir a história. Espera até
        fundir o JOIN de um seguidor com dados, ou o de dois seguidores (os três servidores do
        enunciado: sem dados em nenhum, não há história), ou até ESPERA_HISTORIA desde a
        subida, se nenhum JOIN estiver chegando nessa hora (ler_pedido anota em chegando um
        JOIN pela metade); nunca mais que o prazo de replicação. Os GETs nunca esperam."""
        while not self.historia_ouvida.is_set():
            passou = time.monotonic() - self.subida
            if passou >= self.prazo_replicacao or \
                    (passou >= Servidor.ESPERA_HISTORIA and not self.chegando):
                self.historia_ouvida.set()
            elif passou < Servidor.ESPERA_HISTORIA:
                self.historia_ouvida.wait(Servidor.ESPERA_HISTORIA - passou)
            else:
                # Um JOIN chegando: a fusão dele abre historia_ouvida (se cair, chegando esvazia).
                self.historia_ouvida.wait(Servidor.FATIA)

    def fundir(self, pedido):
        """Sob a trava_put: junta à tabela o que o JOIN traz e manda o que mudou aos
        seguidores conectados, como REPLICATIONs (confirmadas como as de um PUT). Custa o que o
        JOIN traz. Devolve o ERRO de um JOIN que traz mais que o líder e levaria o contador
        acima do limite, ou None.

        Uma key que só o seguidor tem, ou tem com ts maior, entra como está lá, salvo as que
        este líder escreveu desde que subiu (proprias). Dessas, a que o seguidor tem em outra
        versão de ts igual ou maior (um cliente pode tê-la lido) é refeita por cima, na ordem
        original, acima do contador dele; as outras ficam (na vida de um líder o ts de uma key
        só sobe: sem conflito no JOIN, nenhum seguidor mais atrasado a tem mais velha acima).
        Exemplo: o líder volta vazio e aceita k (ts 1); um JOIN traz maior ts 98, m em ts 98 e
        k em ts 50: m entra, e k é refeito em ts 99. Outro traz 100 e não tem k: o contador
        vai a 100, e nada é refeito."""
        dados = pedido.dados or {}
        # Uma key acima do ts do JOIN o sobe: o contador fica acima de tudo na tabela.
        trazido = max([pedido.timestamp or 0] + [ts for _, ts in dados.values()])
        contador = max(self.contador, trazido)
        mudancas, conflitos = {}, []
        for key, (value, ts) in dados.items():
            atual = self.tabela.get(key)
            if key not in self.proprias:
                if atual is None or atual[1] < ts:
                    mudancas[key] = (value, ts)
            elif ts > atual[1] or (ts == atual[1] and value != atual[0]):
                conflitos.append(key)
        renumerados = {}
        for key in sorted(conflitos, key=lambda k: self.tabela[k][1]):
            contador += 1
            value, antigo = self.tabela[key]
            mudancas[key] = (value, contador)
            renumerados[antigo] = contador
        if trazido > self.contador and contador > Servidor.MAIOR_CONTADOR_JOIN:
            # Só quem traz mais que o líder é recusado: um seguidor no contador do líder, ou
            # abaixo, sempre entra.
            return Mensagem(Mensagem.ERRO, value="contador do JOIN alto demais: o limite é %d"
                            % Servidor.MAIOR_CONTADOR_JOIN)
        if not self.historia_ouvida.is_set():
            self.fundidos.add(pedido.origem)
            if trazido > 0 or len(self.fundidos) >= 2:
                self.historia_ouvida.set()
        self.contador = contador
        if not mudancas:
            return None  # o caso comum: o seguidor só está atrasado (ou só traz o contador)
        # Um dicionário novo, não o mesmo alterado: unir compara a identidade para saber se a
        # cópia de um JOIN em curso ficou velha.
        tabela = dict(self.tabela)
        tabela.update(mudancas)
        with self.trava_tabela:
            self.tabela = tabela
        if renumerados:
            # Um PUT repetido (mesmo id) responde o ts que a escrita tem agora.
            for id_put, (ts, resumo) in list(self.ids.items()):
                if ts in renumerados:
                    self.ids[id_put] = (renumerados[ts], resumo)
        self.compactar_ou_avisar()
        novas = sorted((ts, key, value) for key, (value, ts) in mudancas.items())
        self.replicar(Servidor.replications(novas), [ts for ts, _, _ in novas],
                      self.seguidores.values())
        self.detalhar("fundido o JOIN de %s (contador dele %d): %d keys mudaram, contador agora "
                      "%d." % (pedido.origem, pedido.timestamp or 0, len(mudancas), contador))
        return None

    def id_repetido(self, pedido):
        """Sob a trava_put: o ts de um PUT já gravado com o mesmo id (o cliente o repetiu
        porque um servidor caiu no meio), ou None; ValueError se o id veio com outro pedido."""
        anterior = self.ids.get(pedido.id) if pedido.id is not None else None
        if anterior is None:
            return None
        if anterior[1] != hash((pedido.key, pedido.value)):
            raise ValueError("o id %s já foi usado por outro PUT; nada foi gravado"
                             % Mensagem.mostrar(pedido.id))
        return anterior[0]

    def lembrar_id(self, id_put, key, value, timestamp):
        """Sob a trava_put: id -> (ts, resumo do pedido), só os MAXIMO_IDS mais recentes."""
        if id_put is not None:
            self.ids[id_put] = (timestamp, hash((key, value)))
            if len(self.ids) > Servidor.MAXIMO_IDS:
                self.ids.popitem(last=False)

    # ==================================================================================
    # Além do enunciado (4): prazos, para um par que para não segurar ninguém
    # ==================================================================================

    def pegar_encaminhamento(self, conexao):
        """Seguidor: a conexão da Conexao ao líder (sock, leitor), aberta no primeiro PUT e
        fechada com ela; OSError se não abre."""
        if conexao.encaminhamento is not None:
            # Com algo para ler sem pedido feito, já não serve: o líder a fechou (reiniciou),
            # ou o keepalive a achou morta.
            if not Mensagem.pronta(conexao.encaminhamento[0], 0):
                return conexao.encaminhamento
            Servidor.fechar_conexao(conexao.encaminhamento)
            conexao.encaminhamento = None
        sock = self.conectar(Servidor.PRAZO_CONEXAO)
        sock.settimeout(None)  # a resposta do líder espera os seguidores, sem teto
        conexao.encaminhamento = (sock, sock.makefile("rb"))
        return conexao.encaminhamento

    def conectar(self, prazo):
        """Seguidor: uma conexão nova ao líder (OSError se não der), preparada."""
        sock = socket.create_connection(self.lider, prazo)
        try:
            Servidor.preparar(sock)
            if hasattr(socket, "TCP_USER_TIMEOUT"):   # Linux
                # O que vai ao líder é pouco (um PUT, uma confirmação) e o sistema de lá o
                # confirma na hora: sem confirmação em PRAZO_VIVO s, a máquina dele sumiu.
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT,
                                int(Servidor.PRAZO_VIVO * 1000))
        except OSError:
            sock.close()
            raise
        return sock

    @staticmethod
    def preparar(sock):
        """Toda conexão: sem Nagle (cada mensagem é uma linha que deve sair já) e com keepalive
        curto: o outro lado cuja máquina sumiu (desligada, reiniciada, cabo fora: sem FIN nem
        RST) é dado como morto sem esperar um pedido."""
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for nome, valor in Servidor.KEEPALIVE:
            if hasattr(socket, nome):   # Linux; Windows 10 (1709 em diante)
                sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, nome), valor)
        if not hasattr(socket, "TCP_KEEPIDLE") and hasattr(socket, "SIO_KEEPALIVE_VALS"):
            sock.ioctl(socket.SIO_KEEPALIVE_VALS, (1, 1000, 300))   # Windows antigo: 10 sondas

    @staticmethod
    def fechar_conexao(canal):
        sock, leitor = canal
        leitor.close()
        sock.close()

    def recusar_no_limite(self, erro, reserva):
        """O accept falhou; devolve a reserva (um socket guardado, ou None). Sem descritores,
        a conexão nova ficaria na fila sem resposta: solta a reserva, aceita e fecha essa
        conexão (o cliente tenta outro servidor) e reserva de novo."""
        if reserva is not None and erro.errno in Servidor.FALTAS_LOCAIS:
            reserva.close()
            try:
                self.ouvinte.accept()[0].close()
            except OSError:
                pass
            self.avisar_uma_vez("limite", Servidor.NO_LIMITE % "descritores")
        elif reserva is not None:
            return reserva   # um erro passageiro (o cliente desistiu antes do accept)
        try:
            return socket.socket()
        except OSError:
            self.parar.wait(0.1)   # sem descritor nem para a reserva: espera algum fechar
            return None

    @staticmethod
    def com_prazo(sock, prazo, acao):
        """acao() com o socket no prazo dado, que depois volta ao de antes (nenhuma outra
        thread mexe nele: a cópia dup que o CanalDoSeguidor lê tem o seu)."""
        antes = sock.gettimeout()
        sock.settimeout(prazo)
        try:
            return acao()
        finally:
            sock.settimeout(antes)

    def ler_pedido(self, conexao, leitor):
        """Lê o próximo pedido; espera sem prazo por um novo, com prazo pelo resto dele."""
        # peek bloqueia só enquanto a conexão está ociosa e não consome nada.
        inicio = leitor.peek(1)
        if inicio.startswith(Mensagem.INICIO_JOIN):
            self.chegando.add(conexao)  # um JOIN chegando segura o primeiro timestamp
        if not inicio or b"\n" in inicio:
            # A linha inteira já chegou (o caso comum): lê sem mexer no prazo.
            return Mensagem.receber(leitor, join=True)
        return Servidor.com_prazo(conexao.sock, Servidor.PRAZO_LINHA,
                                  lambda: Mensagem.receber(leitor, join=True))

    @staticmethod
    def responder(sock, resposta):
        """Envia a resposta; uma grande, com prazo (um cliente que não a lê não prende esta
        thread para sempre). As pequenas cabem no buffer do sistema e saem sem esperar."""
        linha = resposta.para_linha()
        if len(linha) <= Servidor.RESPOSTA_PEQUENA:
            sock.sendall(linha)
        else:
            Servidor.com_prazo(sock, Servidor.PRAZO_LINHA, lambda: sock.sendall(linha))

    def enviar_aos_seguidores(self, envios):
        """Sob a trava_put: cada linha pelo canal do seu seguidor, envios = [(seguidor, linha)].
        O canal não tem prazo no Python (settimeout(0)): a linha que cabe no buffer do sistema,
        o caso comum, sai num send só. O resto das que não couberam vai a todos juntos, em
        fatias, até cada seguidor passar do limite dele: vários seguidores travados custam um
        prazo só. Quem passa dele ou cai é derrubado (a thread dele o retira)."""
        faltam = []
        for seguidor, linha in envios:
            try:
                saiu = seguidor.sock.send(linha)
            except BlockingIOError:
                saiu = 0  # buffer cheio: o seguidor está lendo devagar
            except OSError:
                Servidor.derrubar(seguidor.sock)
                continue
            if saiu < len(linha):
                faltam.append((seguidor, memoryview(linha)[saiu:]))
        while faltam:
            seguidor, resto = faltam.pop(0)
            if time.monotonic() > self.limite(seguidor):
                seguidor.motivo = "não leu o canal em %g s" % self.prazo_replicacao
                Servidor.derrubar(seguidor.sock)
                continue
            try:
                resto = resto[Servidor.com_prazo(seguidor.sock, Servidor.FATIA_ENVIO,
                                                 lambda: seguidor.sock.send(resto)):]
            except socket.timeout:
                pass
            except OSError:
                Servidor.derrubar(seguidor.sock)
                continue
            if resto:
                faltam.append((seguidor, resto))

    def limite(self, seguidor):
        """O instante em que o seguidor sai por atraso: o prazo de replicação depois do envio
        mais antigo não confirmado, ou da última confirmação (quem confirma devagar fica)."""
        with self.trava_confirmacoes:
            envio = seguidor.pendentes[0][1] if seguidor.pendentes else time.monotonic()
        return max(envio, seguidor.progresso) + self.prazo_replicacao

    def retirar(self, seguidor):
        """O canal caiu ou foi derrubado: o seguidor sai e os PUTs que o esperavam seguem."""
        Servidor.derrubar(seguidor.sock)
        # Sob a trava_put nenhum PUT está num envio por este socket: pode fechar.
        with self.trava_put:
            with self.trava_confirmacoes:
                if self.seguidores.get(seguidor.origem) is seguidor:
                    del self.seguidores[seguidor.origem]
                self.liberar_confirmados()
            seguidor.sock.close()

    @staticmethod
    def derrubar(sock):
        """Acorda quem lê ou envia no socket com erro; quem o lê é quem o fecha."""
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # ==================================================================================
    # Além do enunciado (5): registro em disco (--dados), para os dados sobreviverem aos três
    # ==================================================================================
    # Na pasta: "registro" (cada PUT, uma linha REPLICATION, como no fio) e "snapshot" (a
    # tabela inteira como um JOIN_OK, refeita quando o registro cresce).

    def registrar(self, linha):
        """Sob a trava_put: acrescenta a REPLICATION ao registro (--dados; sem buffer, o write
        sobrevive a um kill -9). Se a escrita ou o fsync falha, o arquivo volta ao tamanho de
        antes e o OSError sobe; se nem a volta der certo, ela é refeita antes da próxima."""
        if self.registro is None:
            return
        if self.tamanho_bom is not None:
            self.registro.truncate(self.tamanho_bom)
            self.tamanho_bom = None
        # O tamanho de verdade, não tell(): depois de uma compactação (truncate(0)) a posição
        # fica no fim antigo, e voltar a ela encheria o arquivo de zeros.
        inicio = os.fstat(self.registro.fileno()).st_size
        try:
            if self.registro.write(linha) != len(linha):
                raise OSError(errno.ENOSPC, "o disco não aceitou a linha inteira")
            if self.fsync:
                os.fsync(self.registro.fileno())  # no disco: sobrevive a uma queda de energia
        except OSError:
            try:
                self.registro.truncate(inicio)
            except OSError:
                self.tamanho_bom = inicio
            raise
        self.linhas_registro += 1

    def compactar_ou_avisar(self):
        """Sob a trava_put: compacta; se o disco falhar, avisa e segue (o que está na memória
        e nos seguidores não muda; o registro só segue crescendo)."""
        try:
            self.compactar()
        except OSError as erro:
            self.avisar_uma_vez("compactar", "Não foi possível compactar o registro em "
                                "disco: %s." % (erro.strerror or erro))

    def compactar(self):
        """Sob a trava_put (ou na subida, antes das threads de conexão): grava o snapshot
        (JOIN_OK) num arquivo novo e zera o registro."""
        if self.pasta is None:
            return
        temporario = os.path.join(self.pasta, "snapshot.tmp")
        with open(temporario, "wb") as arquivo:
            # Sob a trava_put ninguém muda a tabela do líder: ela vai como está.
            arquivo.write(Mensagem(Mensagem.JOIN_OK, dados=self.tabela,
                                   timestamp=self.contador).para_linha())
            arquivo.flush()
            os.fsync(arquivo.fileno())
        # replace é atômico: uma queda aqui deixa o snapshot velho ou o novo, nunca metade; com
        # o novo no lugar, o registro velho só repetiria o que ele já tem.
        os.replace(temporario, os.path.join(self.pasta, "snapshot"))
        if self.registro is None:
            self.registro = open(os.path.join(self.pasta, "registro"), "ab", buffering=0)
        self.registro.truncate(0)
        self.linhas_registro = 0
        self.tamanho_bom = None

    def recuperar_registro(self):
        """Líder com --dados: lê o snapshot, refaz os PUTs do registro e compacta. Dano que
        não seja a última linha cortada por uma queda levanta ValueError (não sobe)."""
        try:
            self.ler_registro()
        except OSError as erro:
            raise ValueError("Não foi possível usar a pasta de dados %s: %s."
                             % (self.pasta, erro.strerror or erro)) from None

    def ler_registro(self):
        os.makedirs(self.pasta, exist_ok=True)
        caminho = os.path.join(self.pasta, "snapshot")
        if os.path.exists(caminho):
            snapshot, _ = Servidor.ler_linhas(caminho, Mensagem.JOIN_OK)
            if len(snapshot) != 1:
                raise ValueError("Registro em disco danificado: %s deve ter uma linha." % caminho)
            self.tabela = Servidor.tabela_de(snapshot[0].dados)
            # O contador nunca fica abaixo de um ts da tabela.
            self.contador = max([snapshot[0].timestamp] + [ts for _, ts in self.tabela.values()])
        caminho = os.path.join(self.pasta, "registro")
        if os.path.exists(caminho):
            pedidos, inteiras = Servidor.ler_linhas(caminho, Mensagem.REPLICATION)
            if inteiras < os.path.getsize(caminho):
                self.avisar("%s: última linha cortada (queda no meio da gravação) descartada."
                            % caminho)
            for pedido in pedidos:
                if pedido.timestamp > self.contador:
                    self.tabela[pedido.key] = (pedido.value, pedido.timestamp)
                    self.contador = pedido.timestamp
        self.compactar()   # o snapshot com tudo, e o registro (com a linha cortada) zerado

    @staticmethod
    def ler_linhas(caminho, tipo):
        """As mensagens das linhas inteiras de um arquivo do registro, e quantos bytes elas
        ocupam (uma última linha sem \\n, cortada por uma queda, fica de fora); qualquer outro
        dano levanta ValueError."""
        with open(caminho, "rb") as arquivo:
            resto = bytearray(arquivo.read())
        tamanho = len(resto)
        mensagens = []
        for numero, linha in enumerate(Mensagem.cortar_linhas(resto), start=1):
            try:
                mensagens.append(Mensagem.de_linha(linha))
                if mensagens[-1].tipo != tipo:
                    raise ValueError("%s fora do lugar" % mensagens[-1].tipo)
            except ValueError as motivo:
                raise ValueError("Registro em disco danificado: %s, linha %d (%s). Nada foi "
                                 "apagado; confira o arquivo." % (caminho, numero, motivo)) \
                    from None
        return mensagens, tamanho - len(resto)

    # ==================================================================================
    # Além do enunciado (6): perguntas, linha de comando, endereços, início e fim
    # ==================================================================================

    @staticmethod
    def perguntar(texto, padrao, converter=str):
        """Pergunta até vir uma resposta válida; Enter aceita o padrão."""
        while True:
            resposta = input("%s [%s]: " % (texto, padrao)).strip()
            try:
                return converter(resposta or str(padrao))
            except ValueError as erro:
                print(erro, file=sys.stderr, flush=True)

    @staticmethod
    def perguntar_porta(ip):
        """Pergunta a porta e já a abre: em uso, é perguntada de novo na hora, não depois das
        perguntas do líder. (porta, ouvinte); None se o IP não serve (aí ele é perguntado)."""
        while True:
            porta = Servidor.perguntar("Porta", Servidor.PORTA_PADRAO, Servidor.ler_porta)
            try:
                return porta, Servidor.abrir_porta(ip, porta)
            except OSError as erro:
                print("Não foi possível abrir %s:%d: %s."
                      % (ip, porta, Servidor.frase_do_erro(erro)), file=sys.stderr, flush=True)
                if not Servidor.porta_em_uso(erro):
                    return None

    @staticmethod
    def abrir_porta(ip, porta):
        """A porta de escuta, já aberta; OSError se não der (porta em uso, IP de fora)."""
        familia = socket.AF_INET6 if ":" in ip else socket.AF_INET
        # create_server só liga SO_REUSEADDR onde é seguro (não no Windows).
        ouvinte = socket.create_server((ip, porta), family=familia,
                                       backlog=Servidor.FILA_DE_CONEXOES)
        ouvinte.settimeout(Servidor.FATIA)
        return ouvinte

    @staticmethod
    def ler_porta(texto):
        """Converte a porta digitada; ValueError com a frase para a pessoa."""
        if not Mensagem.porta_valida(texto):
            raise ValueError("Porta inválida: use um número de 1 a 65535.")
        return int(texto)

    @staticmethod
    def ler_ip(texto):
        """O IP digitado, se resolve; ValueError com a frase para a pessoa."""
        if not Servidor.enderecos_de(texto):
            raise ValueError("IP inválido: %s não é um endereço conhecido." % texto)
        return texto

    @staticmethod
    def ler_segundos(nome, minimo, maximo):
        """Um conversor de segundos, de minimo a maximo; ValueError com a frase para a pessoa."""
        def ler(texto):
            try:
                segundos = float(texto)
            except ValueError:
                segundos = minimo - 1
            if not minimo <= segundos <= maximo:   # NaN também cai aqui
                raise ValueError("%s inválido: use segundos de %g a %g." % (nome, minimo, maximo))
            return segundos
        return ler

    @staticmethod
    def ler_argumentos(argumentos):
        """Linha de comando -> (config ou None, opções para o construtor do Servidor)."""
        posicionais = []
        opcoes = {"atraso_replicacao": 0.0, "dados": None, "fsync": False,
                  "prazo_replicacao": Servidor.PRAZO_REPLICACAO, "detalhes": False}
        com_valor = {"--atraso-replicacao": ("atraso_replicacao", Servidor.ler_segundos(
                         "Atraso", 0, Servidor.ATRASO_MAXIMO)),
                     "--prazo-replicacao": ("prazo_replicacao", Servidor.ler_segundos(
                         "Prazo de replicação", 1, Servidor.PRAZO_REPLICACAO_MAXIMO)),
                     "--dados": ("dados", str)}
        sem_valor = {"--fsync": "fsync", "--detalhes": "detalhes"}
        i = 0
        while i < len(argumentos):
            arg, valor = argumentos[i], None
            if arg.startswith("--") and "=" in arg:
                arg, valor = arg.split("=", 1)
            if arg in ("-h", "--help", "--ajuda"):
                print(Servidor.USO)
                raise SystemExit(0)
            if arg in com_valor and valor is None:
                if i + 1 == len(argumentos):
                    raise ValueError("Falta o valor de %s." % arg)
                valor = argumentos[i + 1]
                i += 1
            if arg in com_valor:
                nome, converter = com_valor[arg]
                opcoes[nome] = converter(valor)
            elif arg in sem_valor and valor is None:
                opcoes[sem_valor[arg]] = True
            elif arg.startswith("-"):
                raise ValueError("Opção desconhecida: %s" % argumentos[i])
            else:
                posicionais.append(arg)
            i += 1
        if len(posicionais) not in (0, 4):
            raise ValueError("Informe os quatro valores (IP PORTA IP_DO_LIDER PORTA_DO_LIDER)"
                             " ou nenhum.")
        if opcoes["fsync"] and opcoes["dados"] is None:
            raise ValueError("--fsync só vale com --dados PASTA.")
        if not posicionais:
            return None, opcoes
        ip, porta, ip_lider, porta_lider = posicionais
        return (Servidor.ler_ip(ip), Servidor.ler_porta(porta),
                Servidor.ler_ip(ip_lider), Servidor.ler_porta(porta_lider)), opcoes

    @staticmethod
    def enderecos_de(ip):
        """Os endereços a que um IP ou nome resolve (localhost: 127.0.0.1 e ::1, em qualquer
        ordem); vazio se não resolve."""
        try:
            return {info[4][0] for info in socket.getaddrinfo(ip, None, 0, socket.SOCK_STREAM)}
        except (OSError, UnicodeError):
            return set()

    @staticmethod
    def local(endereco):
        """É um endereço desta máquina? Só nele dá para abrir uma porta qualquer."""
        familia = socket.AF_INET6 if ":" in endereco else socket.AF_INET
        try:
            with socket.socket(familia, socket.SOCK_STREAM) as sock:
                sock.bind((endereco, 0))
            return True
        except OSError:
            return False

    @staticmethod
    def mesmo_servidor(a, b):
        """Os dois endereços levam ao mesmo servidor? Mesma porta e endereços em comum;
        0.0.0.0 e :: (todas as interfaces) valem por qualquer endereço local."""
        if a[1] != b[1]:
            return False
        de_a, de_b = Servidor.enderecos_de(a[0]), Servidor.enderecos_de(b[0])
        if de_a & de_b:
            return True
        todas = {"0.0.0.0", "::"}
        return bool((de_a & todas and any(Servidor.local(e) for e in de_b)) or
                    (de_b & todas and any(Servidor.local(e) for e in de_a)))

    @staticmethod
    def porta_em_uso(erro):
        return erro.errno in (errno.EADDRINUSE, getattr(errno, "WSAEADDRINUSE", None))

    @staticmethod
    def frase_do_erro(erro):
        """Frase curta para um erro ao abrir a porta."""
        if isinstance(erro, socket.gaierror):
            return "IP inválido"
        if Servidor.porta_em_uso(erro):
            return "porta em uso"
        if erro.errno in (errno.EADDRNOTAVAIL, getattr(errno, "WSAEADDRNOTAVAIL", None)):
            return "o IP não é desta máquina"
        return erro.strerror or str(erro)

    def fechar(self):
        """Para o laço de accept, fecha a porta e escreve o que ainda está na fila do console."""
        self.parar.set()
        if self.ouvinte is not None:
            self.ouvinte.close()
        if self.console.is_alive():
            self.enfileirar(None, None)
            self.console.join(Servidor.PRAZO_SAIDA)

    @staticmethod
    def principal(argumentos):
        """Configura (argumentos ou perguntas), abre a porta e serve até Ctrl+C."""
        try:
            config, opcoes = Servidor.ler_argumentos(argumentos)
        except ValueError as erro:
            print("%s\n%s" % (erro, Servidor.USO), file=sys.stderr, flush=True)
            return 2
        if config is None:
            try:
                ip, porta, ouvinte, ip_lider, porta_lider = Servidor.perguntar_tudo()
            except (KeyboardInterrupt, EOFError):
                # Ctrl+C ou Ctrl+D numa pergunta: termina a linha, e o shell volta na seguinte.
                print(flush=True)
                return 0
        else:
            ip, porta, ip_lider, porta_lider = config
            ouvinte = None
        servidor = Servidor(ip, porta, ip_lider, porta_lider, **opcoes)
        try:
            servidor.abrir(ouvinte)
        except (ValueError, OSError) as erro:  # o registro (--dados) ou a porta
            servidor.fechar()
            print(erro if isinstance(erro, ValueError) else "Não foi possível abrir %s: %s."
                  % (servidor.endereco, Servidor.frase_do_erro(erro)), file=sys.stderr, flush=True)
            return 2
        if servidor.eh_lider and opcoes["atraso_replicacao"]:
            servidor.avisar("Aviso: --atraso-replicacao vale só para seguidores; ignorado.")
        if not servidor.eh_lider and opcoes["dados"] is not None:
            servidor.avisar("Aviso: --dados vale só para o líder; ignorado.")
        try:
            servidor.servir()
        finally:
            servidor.fechar()  # Ctrl+C: a porta fecha e a fila do console é escrita
        return 0


def main():
    # Console que não sabe mostrar um caractere troca por "?" em vez de derrubar o servidor.
    sys.stdout.reconfigure(errors="replace")
    sys.stderr.reconfigure(errors="replace")
    try:
        codigo = Servidor.principal(sys.argv[1:])
    except (KeyboardInterrupt, EOFError):
        codigo = 0
    # Sai já, sem esperar threads de conexão (daemon) que podem estar no meio de um envio.
    # Sem flush aqui: um console pausado o prenderia; a thread Console já escreveu o que deu.
    os._exit(codigo)


if __name__ == "__main__":
    main()
