"""Servidor do KV Store: líder ou seguidor, uma thread por conexão (enunciado, seções 3 e 5)."""

import collections
import errno
import os
import select
import socket
import sys
import threading
import time

from Mensagem import Mensagem


class Servidor:
    """Um servidor do KV store; é o líder quando o endereço do líder é um dos seus.

    Threads, cada uma com um trabalho (enunciado, seção 5b):
      - a principal aceita conexões (servir) e dá a cada uma uma Conexao;
      - Conexao atende uma conexão: lê um pedido, chama o tratador (tabela de despacho),
        responde; um JOIN faz dela o canal de um seguidor, que passa a um Canal;
      - Canal (líder, uma por seguidor unido) lê os REPLICATION_OK dele e o retira no prazo;
      - CanalDoLider (seguidor) abre o canal ao líder (JOIN) e aplica cada REPLICATION;
      - Console escreve as linhas do console, em ordem (os outros só as enfileiram).

    Um PUT no líder (tratar_put): sob a trava_put, gravar_e_replicar dá o próximo timestamp,
    grava disco e tabela e manda a REPLICATION pelo canal de cada seguidor; fora das travas,
    esperar_confirmacoes dorme até o seu sinal ser aberto (liberar_confirmados: pelo Canal que
    lê o último REPLICATION_OK que faltava, ou quando um seguidor que faltava sai do conjunto);
    então PUT_OK. Um PUT num seguidor (encaminhar_put) vai ao líder com a origem do
    cliente, por uma conexão só daquela Conexao, e a resposta volta ao cliente. No seguidor,
    CanalDoLider -> replicar -> aplicar_replicacao aplica e confirma cada REPLICATION. Sem
    seguidor unido, o PUT_OK sai na hora e a escrita fica só no líder (e no disco, com --dados).

    Recuperação, sem relógio: cada JOIN traz a tabela e o contador do seguidor, e o líder funde
    (fundir), sob a trava_put. Uma key que só o seguidor tem, ou que ele tem com ts maior, entra
    como está no seguidor, salvo as que este líder mesmo escreveu desde que subiu (proprias); as
    que só o líder tem ficam. Se o contador do seguidor passa o do líder, ou ele tem, de uma key
    escrita aqui, outra versão de ts igual ou maior, as escritas deste líder são refeitas por
    cima, na ordem original, com timestamps acima de tudo o que o seguidor viu (como o novo
    líder do ZooKeeper sincroniza a partir do maior zxid). O que mudou vai aos seguidores unidos
    como REPLICATIONs, e os PUTs que esperam seguem esperando as confirmações. Um líder que
    acabou de subir não dá timestamp antes de ouvir a história (esperar_historia): até fundir
    um seguidor com dados, ou dois sem nada, ou ESPERA_HISTORIA sem JOIN chegando; senão
    daria números que a história de antes também tem, e um seguidor ainda com ela devolveria
    a um cliente o valor velho da key que ele acabou de escrever (enunciado, seção 5f).

    Travas, sempre nesta ordem: trava_put, depois trava_tabela ou trava_confirmacoes.
      trava_put (líder)          contador do líder, proprias, ids, registro e linhas_registro;
                                 todo envio num canal (snapshot à parte) e o append em
                                 canal.pendentes; todo escritor da tabela do líder a tem, então
                                 ler a tabela do líder sob ela basta (fundir, compactar)
      trava_tabela               cada operação no dicionário tabela que outra thread pode ver
                                 (o GET lê só com ela; quem escreve a tem junto), e o contador
                                 do seguidor; nunca presa durante rede ou disco
      trava_confirmacoes (líder) esperas, canal.confirmado, e o popleft de canal.pendentes
      canais                     escrito com trava_put e trava_confirmacoes, lido com qualquer uma
    Sem trava, e por quê: a configuração (ip, porta, lider, prazos, pasta) não muda depois do
    __init__; ler_registro roda na subida, antes de qualquer conexão ou canal (só o Console já
    existe, e só escreve); canal.pendentes só perde itens
    na thread do seu Canal (que também olha o primeiro sem trava), e deque aceita pôr numa ponta
    e tirar da outra em threads diferentes, como a fila do Console; avisados é um set de
    assuntos (no pior caso um aviso sai duas vezes); a conexão de encaminhamento é de uma
    Conexao só. Qualquer conexão pode mandar JOIN (o seguidor abre o canal como um cliente), e
    não há autenticação: um JOIN falso pode trocar valores pela fusão e subir o contador, e com
    o endereço de um seguidor de verdade o tira do conjunto até ele refazer o JOIN; nunca apaga
    uma key, e não segura os PUTs mais que um prazo.
    """

    IP_PADRAO = "127.0.0.1"
    PORTA_PADRAO = 10097
    # Esperas em fatias: no Windows um accept() bloqueado ignora Ctrl+C, e os prazos dos
    # canais são conferidos a cada fatia.
    FATIA = 0.5
    PRAZO_CONEXAO = 3.0      # para conectar ao líder
    PRAZO_LINHA = 10.0       # para terminar uma linha já começada, ou enviar uma resposta grande
    RESPOSTA_PEQUENA = 64 * 1024
    ATRASO_MAXIMO = 30.0     # maior --atraso-replicacao aceito
    # Seguidor que não confirma uma REPLICATION neste prazo sai do conjunto e os PUTs seguem;
    # maior que ATRASO_MAXIMO, para o seguidor lento da demonstração nunca ser retirado.
    # --prazo-replicacao o troca (os testes o encurtam; o padrão é este).
    PRAZO_REPLICACAO = 40.0
    PRAZO_REPLICACAO_MAXIMO = 600.0
    INTERVALO_REJOIN = 0.5   # entre tentativas do seguidor de entrar no líder
    ESPERA_APOS_RECUSA = 5.0  # líder que recusou o JOIN: o seguidor tenta de novo com calma
    # Líder que acabou de subir: espera no máximo isto, sem nenhum JOIN chegando, antes do
    # primeiro timestamp (um seguidor reconecta em até uns 2 s, também no Windows).
    ESPERA_HISTORIA = 3.0
    # Uma fusão não leva o contador do líder acima disto: sobra espaço nos 64 bits.
    MAIOR_CONTADOR_JOIN = Mensagem.MAIOR_TIMESTAMP // 2
    MAXIMO_IDS = 100000      # ids de PUT lembrados para reconhecer um PUT repetido
    PRAZO_SAIDA = 1.0        # ao sair, espera no máximo isto por um console pausado
    USO = ("uso: python Servidor.py [IP PORTA IP_DO_LIDER PORTA_DO_LIDER]"
           " [--atraso-replicacao SEGUNDOS] [--dados PASTA] [--fsync]"
           " [--prazo-replicacao SEGUNDOS] [--detalhes]")

    def __init__(self, ip, porta, ip_lider, porta_lider, atraso_replicacao=0.0, dados=None,
                 fsync=False, prazo_replicacao=PRAZO_REPLICACAO, detalhes=False):
        self.ip = ip
        self.porta = porta
        self.endereco = "%s:%d" % (ip, porta)
        self.lider = (ip_lider, porta_lider)
        self.endereco_lider = "%s:%d" % self.lider
        self.eh_lider = Servidor.mesmo_servidor((ip, porta), self.lider)
        self.atraso_replicacao = atraso_replicacao
        self.prazo_replicacao = prazo_replicacao
        self.detalhes = detalhes
        # A tabela: key -> (value, timestamp). Entradas são trocadas, nunca alteradas.
        self.tabela = {}
        # Líder: o contador lógico global (como o zxid). Seguidor: o maior ts que tem.
        self.contador = 0
        self.trava_put = threading.Lock()
        self.trava_tabela = threading.Lock()
        self.trava_confirmacoes = threading.Lock()
        # Líder: origem "ip:porta" do seguidor -> o seu Canal (só seguidores unidos).
        self.canais = {}
        # Líder: PUTs esperando confirmações: (ts, origens unidas no PUT, sinal a abrir).
        self.esperas = []
        # Líder: id de PUT -> (timestamp, hash da key e do value): o PUT repetido não grava
        # de novo, e o mesmo id com outro pedido é recusado.
        self.ids = collections.OrderedDict()
        # Líder: as keys que ele mesmo gravou desde que subiu. Um seguidor mais adiantado que
        # entra depois não apaga essas escritas: elas são refeitas por cima (fundir).
        self.proprias = set()
        # Líder: aberto quando ele já pode dar timestamps (esperar_historia); as Conexoes que
        # estão recebendo um JOIN; e os seguidores sem dados já fundidos.
        self.historia = threading.Event()
        self.subida = time.monotonic()
        self.chegando = set()
        self.vazios = set()
        # Registro em disco (--dados): arquivo aberto para acrescentar, e linhas desde o snapshot.
        self.pasta = dados
        self.fsync = fsync
        self.registro = None
        self.linhas_registro = 0
        self.parar = threading.Event()
        self.ouvinte = None
        self.console = Servidor.Console()
        self.avisados = set()
        # Tabela de despacho: tipo -> tratador. Tipo fora dela recebe ERRO.
        self.tratadores = {
            Mensagem.PUT: self.tratar_put if self.eh_lider else self.encaminhar_put,
            Mensagem.GET: self.tratar_get,
            Mensagem.REPLICATION: self.recusar_replicacao,
            Mensagem.JOIN_OK: self.recusar_replicacao,
        }

    # ==== threads: cada uma com um trabalho

    class Conexao(threading.Thread):
        """Atende uma conexão aceita: lê pedido, trata, responde, até ela fechar.

        Um JOIN faz da conexão o canal de um seguidor: ela passa para um Canal e esta
        thread termina sem fechá-la.
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
            arquivo = self.sock.makefile("rb", buffering=64 * 1024)
            entregue = False
            try:
                while True:
                    servidor.chegando.discard(self)
                    try:
                        pedido = servidor.ler_pedido(self, arquivo)
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
                        entregue = servidor.receber_seguidor(pedido, self, arquivo)
                        if entregue:
                            break
                        continue
                    Servidor.responder(self.sock, servidor.despachar(pedido, self))
            except OSError:
                pass  # o outro lado caiu ou fechou: nada a responder
            finally:
                servidor.chegando.discard(self)
                if self.encaminhamento is not None:
                    self.encaminhamento[0].close()
                arquivo.close()  # o socket só fecha de fato quando o leitor também fecha
                if not entregue:
                    self.sock.close()

    class Canal(threading.Thread):
        """Líder: lê, em ordem, os REPLICATION_OK de um seguidor; retira quem passa do prazo.

        Só lê: quem escreve no socket (os PUTs e o JOIN, sob a trava_put) passa por
        enviar_ao_seguidor. Esta thread lê por uma cópia do socket (dup) com prazo de uma
        FATIA: o recv volta a cada fatia para conferir o prazo do seguidor, sem um select antes
        de cada leitura e sem mexer no prazo de quem envia (prazo zero ou positivo, as duas
        cópias concordam em ser não bloqueantes no sistema).
        """

        def __init__(self, servidor, sock, origem, timestamp):
            super().__init__(daemon=True, name="canal-%s" % origem)
            self.servidor = servidor
            self.sock = sock
            self.origem = origem
            # O maior ts que o seguidor confirmou (o snapshot conta), e os enviados sem
            # confirmação, em ordem: (ts, instante do envio).
            self.confirmado = timestamp
            self.pendentes = collections.deque()
            # Por que quem envia derrubou o canal (um envio preso que passou do prazo).
            self.motivo = None

        def run(self):
            servidor = self.servidor
            resto = bytearray()
            progresso = time.monotonic()
            motivo = None
            leitor = None
            try:
                leitor = self.sock.dup()
                leitor.settimeout(Servidor.FATIA)
                while motivo is None:
                    try:
                        dados = leitor.recv(64 * 1024)
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
                            progresso = time.monotonic()
                        if len(resto) > Mensagem.LIMITE_RESPOSTA:
                            # O REPLICATION_OK leva a key, que pode ter até 16 MiB.
                            motivo = "linha longa demais no canal"
                    if self.pendentes and motivo is None:
                        # O prazo conta desde o envio, ou desde a última confirmação: um
                        # seguidor lento que confirma uma a uma segue unido.
                        espera = time.monotonic() - max(self.pendentes[0][1], progresso)
                        if espera > servidor.prazo_replicacao:
                            motivo = ("não confirmou a REPLICATION ts:%d em %g s"
                                      % (self.pendentes[0][0], servidor.prazo_replicacao))
            except OSError:
                pass  # o seguidor caiu
            finally:
                if leitor is not None:
                    leitor.close()
                motivo = motivo or self.motivo
                if motivo is not None:
                    servidor.avisar("Seguidor %s retirado: %s. Ele volta quando refizer o JOIN."
                                    % (self.origem, motivo))
                servidor.retirar(self)
                servidor.detalhar("seguidor %s saiu do conjunto." % self.origem)

    class CanalDoLider(threading.Thread):
        """Seguidor: abre o canal ao líder (JOIN), aplica cada REPLICATION; refaz se cair."""

        def __init__(self, servidor):
            super().__init__(daemon=True, name="canal-do-lider")
            self.servidor = servidor

        def run(self):
            servidor = self.servidor
            avisado = None
            while not servidor.parar.is_set():
                sock = None
                espera = Servidor.INTERVALO_REJOIN
                try:
                    # [5a] O seguidor entra no líder: JOIN com a tabela e o contador dele, o
                    # snapshot (já fundido) instalado e confirmado; só então está unido.
                    try:
                        sock = socket.create_connection(servidor.lider, Servidor.PRAZO_CONEXAO)
                    except OSError as erro:
                        # Sem líder, o seguidor fica calado (enunciado, seção 6: só as linhas
                        # pedidas); um líder digitado errado aparece no ERRO do primeiro PUT.
                        servidor.detalhar_uma_vez("sem-lider", "sem contato com o líder %s (%s); "
                                                  "tentando de novo." % (servidor.endereco_lider,
                                                                         erro.strerror or erro))
                        raise
                    servidor.avisados.discard("sem-lider")  # a próxima falta é dita de novo
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    sock.settimeout(servidor.prazo_replicacao)
                    arquivo = sock.makefile("rb")
                    servidor.pedir_join().enviar(sock)
                    # Sem limite de linha: só o líder fala aqui, e o snapshot passa de 16 MiB.
                    timestamp = servidor.instalar_snapshot(Mensagem.receber(arquivo, limite=None))
                    Mensagem(Mensagem.REPLICATION_OK, timestamp=timestamp).enviar(sock)
                    avisado = None

                    # Daqui em diante o líder fala quando há PUT: espera sem prazo.
                    sock.settimeout(None)
                    servidor.replicar(sock, arquivo)
                except OSError:
                    pass  # líder fora do ar ou caiu: tenta de novo
                except ValueError as erro:
                    # O líder recusou o JOIN ou falou fora do protocolo: diz uma vez só, e
                    # tenta de novo com calma (cada JOIN leva a tabela inteira).
                    espera = Servidor.ESPERA_APOS_RECUSA
                    if str(erro) != avisado:
                        avisado = str(erro)
                        servidor.avisar("Canal com o líder %s recusado: %s"
                                        % (servidor.endereco_lider, erro))
                finally:
                    if sock is not None:
                        sock.close()
                servidor.parar.wait(espera)

    class Console(threading.Thread):
        """Escreve as linhas do console, em ordem: um console pausado (no Windows, o modo de
        seleção do Prompt) atrasa só as próprias linhas, nunca o cluster."""

        def __init__(self):
            super().__init__(daemon=True, name="console")
            # (arquivo, linha) em ordem; (None, None) encerra. Quem acrescenta abre o aviso
            # (enfileirar), e esta thread escreve na hora tudo o que achar na fila.
            self.fila = collections.deque()
            self.aviso = threading.Event()

        def run(self):
            while True:
                self.aviso.wait()
                # Limpa antes de esvaziar: uma linha que chega depois abre o aviso de novo.
                self.aviso.clear()
                while self.fila:
                    arquivo, linha = self.fila.popleft()
                    if arquivo is None:
                        return
                    linhas = [linha]
                    while self.fila and self.fila[0][0] is arquivo:
                        linhas.append(self.fila.popleft()[1])
                    try:
                        print("\n".join(linhas), file=arquivo, flush=True)
                    except (OSError, ValueError):
                        pass  # console fechado: o servidor continua servindo

    # ==== entrada e saída, comuns aos dois papéis

    def ler_pedido(self, conexao, arquivo):
        """Lê o próximo pedido; espera sem prazo por um novo, com prazo pelo resto dele."""
        # peek bloqueia só enquanto a conexão está ociosa e não consome nada. A linha inteira
        # já chegou (o caso comum): lê sem mexer no prazo, que custaria chamadas ao sistema.
        inicio = arquivo.peek(1)
        if inicio.startswith(Mensagem.INICIO_JOIN):
            self.chegando.add(conexao)  # um JOIN chegando segura o primeiro timestamp
        sock = conexao.sock
        if not inicio or b"\n" in inicio:
            return Mensagem.receber(arquivo, join=True)
        # Só esta thread usa este socket: pode mudar o prazo dele.
        sock.settimeout(Servidor.PRAZO_LINHA)
        try:
            return Mensagem.receber(arquivo, join=True)
        finally:
            sock.settimeout(None)

    @staticmethod
    def responder(sock, resposta):
        """Envia a resposta; uma grande, com prazo (um cliente que não a lê não prende esta
        thread para sempre). As pequenas cabem no buffer do sistema e saem sem esperar."""
        linha = resposta.para_linha()
        if len(linha) <= Servidor.RESPOSTA_PEQUENA:
            sock.sendall(linha)
            return
        sock.settimeout(Servidor.PRAZO_LINHA)
        try:
            sock.sendall(linha)
        finally:
            sock.settimeout(None)

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

    def escrever(self, linha):
        """Uma linha da seção 6 do enunciado no console (pela thread Console)."""
        self.enfileirar(sys.stdout, linha)

    def avisar(self, linha):
        """Uma linha de erro para a pessoa, em stderr (stdout só tem as linhas da seção 6)."""
        self.enfileirar(sys.stderr, linha)

    def enfileirar(self, arquivo, linha):
        self.console.fila.append((arquivo, linha))
        if not self.console.aviso.is_set():
            self.console.aviso.set()  # só acorda o Console se ele está esperando

    def detalhar(self, linha):
        """Com --detalhes: a entrada e a saída de seguidores e as fusões, em stderr (para
        acompanhar o cluster e para os testes; fora disso, nada disto aparece)."""
        if self.detalhes:
            self.avisar("Detalhe: " + linha)

    def avisar_uma_vez(self, assunto, linha):
        if assunto not in self.avisados:
            self.avisados.add(assunto)
            self.avisar(linha)

    def detalhar_uma_vez(self, assunto, linha):
        if self.detalhes:
            self.avisar_uma_vez(assunto, "Detalhe: " + linha)

    # ==== O LÍDER. PUT: timestamp, tabela, disco e REPLICATION; PUT_OK depois das confirmações

    # [5c] Recebe PUT no líder: grava com o próximo timestamp, replica, e responde.
    def tratar_put(self, pedido, conexao):
        """PUT no líder: timestamp global, grava, replica e só então responde PUT_OK."""
        cliente = pedido.origem or conexao.cliente
        self.escrever("Cliente %s PUT key:%s value:%s"
                      % (cliente, Mensagem.mostrar(pedido.key), Mensagem.mostrar(pedido.value)))
        self.esperar_historia()
        with self.trava_put:
            anterior = self.ids.get(pedido.id) if pedido.id is not None else None
            if anterior is None:
                try:
                    timestamp = self.gravar_e_replicar(pedido.key, pedido.value, pedido.id)
                except OSError as erro:  # o registro em disco (--dados) falhou
                    self.avisar("Erro ao gravar o registro em disco: %s." % (erro.strerror or erro))
                    return Mensagem(Mensagem.ERRO, value="o líder não conseguiu gravar no disco; "
                                    "o PUT pode ou não ter sido feito")
            elif anterior[1] != hash((pedido.key, pedido.value)):
                return Mensagem(Mensagem.ERRO, value="o id %s já foi usado por outro PUT; nada "
                                "foi gravado" % Mensagem.mostrar(pedido.id))
            else:
                timestamp = anterior[0]  # repetido: espera o original e responde o mesmo ts
            origens = list(self.canais)
        # [5e] PUT_OK só depois do REPLICATION_OK de todos os seguidores unidos.
        self.esperar_confirmacoes(timestamp, origens)
        self.escrever("Enviando PUT_OK ao Cliente %s da key:%s ts:%d"
                      % (cliente, Mensagem.mostrar(pedido.key), timestamp))
        return Mensagem(Mensagem.PUT_OK, key=pedido.key, value=pedido.value, timestamp=timestamp,
                        id=pedido.id)

    def gravar_e_replicar(self, key, value, id_put):
        """Sob a trava_put: o próximo timestamp, o disco, a tabela e a REPLICATION a cada canal.

        Enviar sob a trava mantém a ordem total no fio sem filas. OSError só do disco, antes
        de qualquer mudança.
        """
        timestamp = self.contador + 1
        linha = Mensagem(Mensagem.REPLICATION, key=key, value=value,
                         timestamp=timestamp).para_linha()
        # O registro vem antes de tudo: o que a tabela ou um seguidor tem, o disco também tem.
        self.registrar(linha)
        self.contador = timestamp
        with self.trava_tabela:
            self.tabela[key] = (value, timestamp)
        self.proprias.add(key)
        if id_put is not None:
            self.ids[id_put] = (timestamp, hash((key, value)))
            if len(self.ids) > Servidor.MAXIMO_IDS:
                self.ids.popitem(last=False)
        # Depois da tabela: a compactação grava a tabela com esta escrita dentro.
        self.compactar_se_cresceu()
        # [5c] Replica (key, value, timestamp) nos seguidores com a mensagem REPLICATION.
        self.enviar_a_todos(linha, timestamp)
        return timestamp

    def enviar_a_todos(self, linha, timestamp):
        """Sob a trava_put: a REPLICATION a cada canal; um canal que falha é derrubado (a
        thread dele o retira)."""
        for canal in self.canais.values():
            # Registra antes de enviar (a confirmação pode chegar antes do envio voltar), com
            # a hora deste canal: o envio ao anterior pode ter esperado.
            canal.pendentes.append((timestamp, time.monotonic()))
            try:
                self.enviar_ao_seguidor(canal.sock, linha)
            except socket.timeout:
                # Um seguidor que não lê (pausado, ou falso) não segura os PUTs: sai com aviso.
                canal.motivo = ("não leu a REPLICATION ts:%d em %g s"
                                % (timestamp, self.prazo_replicacao))
                Servidor.derrubar(canal.sock)
            except OSError:
                Servidor.derrubar(canal.sock)  # o seguidor caiu: a thread do Canal o retira

    def enviar_ao_seguidor(self, sock, linha):
        """Sob a trava_put: manda uma linha pelo canal de um seguidor, no prazo de replicação.

        O socket do canal fica sem prazo no Python (settimeout(0)): a linha que cabe no buffer
        do sistema, o caso comum, sai num send só, sem o poll que um prazo põe antes de cada
        envio. Só o resto de uma que não coube espera, com o prazo.
        """
        try:
            enviado = sock.send(linha)
        except BlockingIOError:
            enviado = 0  # buffer cheio: o seguidor está lendo devagar
        if enviado < len(linha):
            sock.settimeout(self.prazo_replicacao)
            try:
                sock.sendall(memoryview(linha)[enviado:])
            finally:
                sock.settimeout(0)

    def esperar_historia(self):
        """Líder que acabou de subir: nenhum timestamp antes de ouvir a história. Espera até
        fundir o JOIN de um seguidor com dados (fundir abre historia), ou até ESPERA_HISTORIA
        sem nenhum JOIN chegando; nunca mais que o prazo de replicação."""
        while not self.historia.is_set():
            passou = time.monotonic() - self.subida
            if passou >= self.prazo_replicacao or \
                    (passou >= Servidor.ESPERA_HISTORIA and not self.chegando):
                self.historia.set()
            else:
                self.historia.wait(min(Servidor.FATIA,
                                       max(Servidor.ESPERA_HISTORIA - passou, 0.01)))

    def esperar_confirmacoes(self, timestamp, origens):
        """Dorme, fora de todas as travas, até cada seguidor de origens (unido no PUT, e ainda
        unido) confirmar o timestamp. Sem prazo fixo: enquanto um seguidor confirma, espera; o
        que para de confirmar, o Canal dele retira no prazo de replicação, e a espera acaba."""
        sinal = threading.Event()  # aberto por quem lê o REPLICATION_OK que faltava
        with self.trava_confirmacoes:
            self.esperas.append((timestamp, origens, sinal))
            self.liberar_confirmados()
        sinal.wait()

    # ==== O LÍDER. REPLICATION_OK: cada Canal confirma em ordem; quem para de confirmar sai

    # [5e] Recebe REPLICATION_OK: confirma, em ordem, as REPLICATIONs mais antigas do canal.
    def confirmar(self, canal, linhas):
        """Líder: aplica os REPLICATION_OK lidos; devolve o motivo para derrubar, ou None."""
        with self.trava_confirmacoes:
            for linha in linhas:
                try:
                    confirmacao = Mensagem.de_linha(linha)
                except ValueError as erro:
                    return "linha inválida no canal (%s)" % erro
                esperado = canal.pendentes[0][0] if canal.pendentes else None
                if confirmacao.tipo != Mensagem.REPLICATION_OK or \
                        confirmacao.timestamp != esperado:
                    return "%s ts:%s fora de ordem no canal" % (confirmacao.tipo,
                                                                 confirmacao.timestamp)
                canal.pendentes.popleft()
                # max: uma fusão manda keys com ts abaixo do já confirmado (e em ordem, atrás).
                canal.confirmado = max(canal.confirmado, confirmacao.timestamp)
            self.liberar_confirmados()
        return None

    def liberar_confirmados(self):
        """Sob a trava_confirmacoes: abre o sinal de cada PUT já confirmado por todos."""
        faltam = []
        for espera in self.esperas:
            timestamp, origens, sinal = espera
            if self.confirmado_por_todos(timestamp, origens):
                sinal.set()
            else:
                faltam.append(espera)
        self.esperas = faltam

    def confirmado_por_todos(self, timestamp, origens):
        """Sob a trava_confirmacoes: a regra da seção 5e. Cada seguidor unido quando o PUT foi
        gravado já confirmou o timestamp, ou saiu do conjunto (e então não conta mais)."""
        for origem in origens:
            canal = self.canais.get(origem)
            if canal is not None and canal.confirmado < timestamp:
                return False
        return True

    def retirar(self, canal):
        """O canal caiu ou foi derrubado: sai do conjunto e libera os PUTs que esperavam por ele."""
        Servidor.derrubar(canal.sock)
        # Sob a trava_put nenhum PUT está num sendall deste socket: pode fechar.
        with self.trava_put:
            with self.trava_confirmacoes:
                if self.canais.get(canal.origem) is canal:
                    del self.canais[canal.origem]
                self.liberar_confirmados()
            canal.sock.close()

    @staticmethod
    def derrubar(sock):
        """Acorda quem lê ou envia no socket com erro; quem o lê é quem o fecha."""
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # ==== O LÍDER. JOIN e recuperação: fundir o que o seguidor traz, snapshot, canal unido

    # [5a] JOIN no líder: manda o snapshot; confirmado, a conexão vira o canal do seguidor.
    def receber_seguidor(self, pedido, conexao, arquivo):
        """Líder: JOIN -> JOIN_OK com o snapshot -> REPLICATION_OK dele -> canal unido.

        Devolve True se a conexão virou canal (a Conexao não a fecha). O snapshot é enviado e
        confirmado fora da trava_put: um seguidor lento ou falso não segura os PUTs.
        """
        sock = conexao.sock
        recusa = self.recusar_join(pedido)
        if recusa is None:
            with self.trava_put:
                recusa = self.fundir(pedido)
                # Entradas não mudam (são trocadas): a cópia rasa fixa um instante. Os pares
                # (value, ts) viajam como listas JSON: a cópia já é o "dados" do JOIN_OK.
                tabela, timestamp = self.tabela, self.contador
                with self.trava_tabela:
                    snapshot = dict(tabela) if recusa is None else None
        self.chegando.discard(conexao)
        if recusa is not None:
            recusa.enviar(sock)
            return False
        # O snapshot tem o prazo de replicação; unido, o canal envia por enviar_ao_seguidor.
        sock.settimeout(self.prazo_replicacao)
        Mensagem(Mensagem.JOIN_OK, dados=snapshot, timestamp=timestamp).enviar(sock)
        try:
            confirmacao = Mensagem.receber(arquivo)
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
        if Servidor.mesmo_servidor(Servidor.separar(pedido.origem), (self.ip, self.porta)):
            return Mensagem(Mensagem.ERRO, value="JOIN com o endereço do próprio líder")
        return None

    def fundir(self, pedido):
        """Sob a trava_put: junta à tabela o que o JOIN traz (a regra está na docstring da
        classe) e manda o que mudou aos seguidores unidos, como REPLICATIONs: eles confirmam
        como de costume, e nenhum PUT que espera é liberado sem confirmação. Devolve o ERRO
        de um JOIN que levaria o contador acima do limite, ou None.

        Exemplo: o líder volta vazio e aceita k (ts 1). Um seguidor entra com contador 98 e
        m em ts 98: m entra como está, e k é refeito em ts 99. Outro entra com contador 100 e
        a k de antes em ts 100 (um cliente pode ter lido essa): k é refeito de novo, em 101."""
        dados = pedido.dados or {}
        # Uma key acima do contador do JOIN sobe o contador: nada fica acima do contador.
        trazido = max([pedido.timestamp or 0] + [ts for _, ts in dados.values()])
        contador = max(self.contador, trazido)
        mudancas = {}
        refazer = contador > self.contador  # o seguidor viu mais da história que o líder
        for key, (value, ts) in dados.items():
            atual = self.tabela.get(key)
            if key not in self.proprias:
                if atual is None or atual[1] < ts:
                    mudancas[key] = (value, ts)
            elif ts > atual[1] or (ts == atual[1] and value != atual[0]):
                # Uma k de antes do reinício com ts igual ou maior que o da escrita deste
                # líder: um cliente pode tê-la visto, então a escrita daqui vai para cima.
                refazer = True
        renumerados = {}
        if refazer:
            # As escritas deste líder vêm depois de tudo o que o seguidor viu: refeitas por
            # cima, na ordem original, com timestamps novos acima do contador dele.
            for key in sorted(self.proprias, key=lambda k: self.tabela[k][1]):
                contador += 1
                value, antigo = self.tabela[key]
                mudancas[key] = (value, contador)
                renumerados[antigo] = contador
        if trazido > self.contador and contador > Servidor.MAIOR_CONTADOR_JOIN:
            # Só quem traz mais que o líder é recusado: um seguidor no contador do líder, ou
            # abaixo, sempre entra.
            return Mensagem(Mensagem.ERRO, value="contador do JOIN alto demais: o limite é %d"
                            % Servidor.MAIOR_CONTADOR_JOIN)
        if not self.historia.is_set():
            # Um seguidor com dados traz a história; dois sem nada (os três servidores do
            # enunciado) dizem que não há história: o líder pode dar timestamps.
            self.vazios.add(pedido.origem)
            if trazido > 0 or len(self.vazios) >= 2:
                self.historia.set()
        if not mudancas and contador == self.contador:
            return None  # o caso comum: o seguidor só está atrasado
        tabela = dict(self.tabela)
        tabela.update(mudancas)
        with self.trava_tabela:
            self.tabela = tabela
        self.contador = contador
        if renumerados:
            # Um PUT repetido (mesmo id) responde o ts que a escrita tem agora.
            for id_put, (ts, resumo) in list(self.ids.items()):
                if ts in renumerados:
                    self.ids[id_put] = (renumerados[ts], resumo)
        self.compactar()
        for ts, key, value in sorted((ts, key, value) for key, (value, ts) in mudancas.items()):
            self.enviar_a_todos(Mensagem(Mensagem.REPLICATION, key=key, value=value,
                                         timestamp=ts).para_linha(), ts)
        self.detalhar("fundido o JOIN de %s (contador dele %d): %d keys mudaram, contador agora "
                      "%d." % (pedido.origem, pedido.timestamp or 0, len(mudancas), contador))
        return None

    def unir(self, origem, sock, tabela, timestamp):
        """Sob a trava_put: manda como REPLICATION o que entrou depois do snapshot e põe o
        canal no conjunto, no lugar do antigo do mesmo endereço, se havia."""
        with self.trava_put:
            if self.tabela is not tabela:
                # fundir troca o dicionário inteiro: outro JOIN foi fundido e este snapshot
                # ficou velho. O seguidor refaz o JOIN e recebe a tabela fundida.
                raise ConnectionError("a tabela mudou por uma fusão durante o JOIN")
            canal = Servidor.Canal(self, sock, origem, timestamp)
            with self.trava_tabela:
                novos = sorted((ts, key, value) for key, (value, ts) in self.tabela.items()
                               if ts > timestamp)
            agora = time.monotonic()
            sock.settimeout(0)  # daqui em diante, todo envio passa por enviar_ao_seguidor
            for ts, key, value in novos:
                canal.pendentes.append((ts, agora))
                self.enviar_ao_seguidor(sock, Mensagem(Mensagem.REPLICATION, key=key,
                                                       value=value, timestamp=ts).para_linha())
            # [threads] Uma thread por seguidor unido lê os REPLICATION_OK dele. Começa antes
            # de o canal entrar no conjunto: se não começar, nenhum PUT espera por ele. Se ela
            # já terminar, o retirar dela espera esta trava e acha o canal lá.
            try:
                canal.start()
            except RuntimeError:
                raise ConnectionError("sem memória para a thread do canal") from None
            with self.trava_confirmacoes:
                antigo = self.canais.get(origem)
                self.canais[origem] = canal
                self.liberar_confirmados()
        self.detalhar("seguidor %s unido no ts %d." % (origem, timestamp))
        if antigo is not None:
            Servidor.derrubar(antigo.sock)

    # ==== O LÍDER. Registro em disco (--dados)

    def registrar(self, linha):
        """Sob a trava_put: acrescenta a REPLICATION ao registro (--dados)."""
        if self.registro is None:
            return
        self.registro.write(linha)
        self.registro.flush()  # no SO: sobrevive a um kill -9 do processo
        if self.fsync:
            os.fsync(self.registro.fileno())  # no disco: sobrevive a uma queda de energia
        self.linhas_registro += 1

    def compactar_se_cresceu(self):
        """Sob a trava_put, com a escrita já na tabela: um registro grande vira snapshot."""
        if self.registro is not None and self.linhas_registro > 2 * len(self.tabela) + 1000:
            try:
                self.compactar()
            except OSError as erro:
                # A escrita já está no registro: nada se perde, ele só segue crescendo.
                self.avisar_uma_vez("compactar", "Não foi possível compactar o registro em "
                                    "disco: %s." % (erro.strerror or erro))

    def compactar(self):
        """Sob a trava_put (ou na subida, antes das outras threads): grava o snapshot (JOIN_OK)
        num arquivo novo e zera o registro."""
        if self.pasta is None:
            return
        temporario = os.path.join(self.pasta, "snapshot.tmp")
        with open(temporario, "wb") as arquivo:
            # Sob a trava_put ninguém muda a tabela do líder: ela vai como está.
            arquivo.write(Mensagem(Mensagem.JOIN_OK, dados=self.tabela,
                                   timestamp=self.contador).para_linha())
            arquivo.flush()
            os.fsync(arquivo.fileno())
        # replace é atômico: uma queda aqui deixa o snapshot velho ou o novo, nunca metade.
        # Com o snapshot novo no lugar, o registro velho só repetiria o que ele já tem.
        os.replace(temporario, os.path.join(self.pasta, "snapshot"))
        if self.registro is None:
            self.registro = open(os.path.join(self.pasta, "registro"), "ab")
        self.registro.truncate(0)
        self.linhas_registro = 0

    def recuperar_registro(self):
        """Líder com --dados: lê o snapshot e refaz os PUTs do registro. Dano que não seja a
        última linha cortada por uma queda levanta ValueError (o servidor não sobe)."""
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
            # Reescreve sem a linha cortada, para os próximos PUTs começarem numa linha nova.
            with open(caminho, "r+b") as arquivo:
                arquivo.truncate(inteiras)
        self.compactar()

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
                mensagem = Mensagem.de_linha(linha)
            except ValueError as erro:
                mensagem, motivo = None, erro
            if mensagem is not None and mensagem.tipo != tipo:
                motivo = "%s fora do lugar" % mensagem.tipo
            if mensagem is None or mensagem.tipo != tipo:
                raise ValueError("Registro em disco danificado: %s, linha %d (%s). Nada foi "
                                 "apagado; confira o arquivo." % (caminho, numero, motivo))
            mensagens.append(mensagem)
        return mensagens, tamanho - len(resto)

    # ==== O SEGUIDOR. PUT: encaminhado ao líder

    # [5c] Recebe PUT num seguidor: encaminha ao líder e devolve a resposta dele ao cliente.
    def encaminhar_put(self, pedido, conexao):
        """Seguidor: passa o PUT ao líder com a origem do cliente e devolve a resposta dele.

        Sem prazo para a resposta: o líder responde assim que os seguidores confirmam (e
        retira quem para de confirmar). Um líder que cai fecha a conexão e a espera acaba.
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
            sock, arquivo = self.conexao_ao_lider(conexao)
            # Só esta thread usa este socket: o envio tem prazo, a resposta não.
            sock.settimeout(Servidor.PRAZO_LINHA)
            pedido.enviar(sock)
            enviado = True
            sock.settimeout(None)
            resposta = Mensagem.receber(arquivo, limite=Mensagem.LIMITE_RESPOSTA)
        except (OSError, ValueError):
            resposta = None
        if resposta is not None:
            return resposta
        # Sem nova tentativa daqui: o cliente sabe se pode repetir (o id do PUT).
        if conexao.encaminhamento is not None:
            conexao.encaminhamento[0].close()
            conexao.encaminhamento = None
        if enviado:
            situacao = "não respondeu; o PUT pode ou não ter sido feito"
        else:
            situacao = "está fora do ar; o PUT não foi feito"
        self.avisar("Líder %s %s (key:%s)."
                    % (self.endereco_lider, situacao, Mensagem.mostrar(pedido.key)))
        return Mensagem(Mensagem.ERRO, value="o líder %s %s" % (self.endereco_lider, situacao))

    def conexao_ao_lider(self, conexao):
        """A conexão de encaminhamento desta Conexao; refeita se o líder a fechou."""
        if conexao.encaminhamento is not None:
            sock = conexao.encaminhamento[0]
            # Legível sem pedido feito = o líder fechou (ou reiniciou): descarta e reabre.
            if select.select([sock], [], [], 0)[0]:
                sock.close()
                conexao.encaminhamento = None
        if conexao.encaminhamento is None:
            sock = socket.create_connection(self.lider, Servidor.PRAZO_CONEXAO)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conexao.encaminhamento = (sock, sock.makefile("rb"))
        return conexao.encaminhamento

    # ==== O SEGUIDOR. JOIN e REPLICATION, pelo canal que ele abre ao líder

    def pedir_join(self):
        """Seguidor: o JOIN leva o endereço, o contador e a tabela inteira (o líder que
        reiniciou recupera dela o que perdeu, de qualquer tamanho até Mensagem.LIMITE_JOIN)."""
        with self.trava_tabela:
            dados = dict(self.tabela)  # os pares (value, ts) viajam como listas JSON
            contador = self.contador
        return Mensagem(Mensagem.JOIN, origem=self.endereco, timestamp=contador,
                        dados=dados or None)

    def instalar_snapshot(self, resposta):
        """Seguidor: a tabela passa a ser o snapshot do JOIN_OK; devolve o timestamp dele."""
        if resposta is None:
            raise OSError("o líder fechou o canal")
        if resposta.tipo != Mensagem.JOIN_OK:
            raise ValueError(resposta.value if resposta.tipo == Mensagem.ERRO
                             else "resposta %s ao JOIN" % resposta.tipo)
        tabela = Servidor.tabela_de(resposta.dados)
        with self.trava_tabela:
            if resposta.timestamp < self.contador:
                # Nunca se esvazia por engano: os dados daqui são mais novos que os do líder.
                raise ValueError("o snapshot do líder (%d) é mais velho que o daqui (%d)"
                                 % (resposta.timestamp, self.contador))
            self.tabela = tabela
            self.contador = resposta.timestamp
        return resposta.timestamp

    @staticmethod
    def tabela_de(dados):
        """O "dados" de um JOIN_OK ou do snapshot em disco (key -> [value, ts]) como tabela
        (key -> (value, ts)). No outro sentido não há conversão: a tupla vira lista no JSON."""
        return {key: (value, ts) for key, (value, ts) in dados.items()}

    def replicar(self, sock, arquivo):
        """Seguidor: aplica as REPLICATIONs do canal, em ordem, e confirma cada uma."""
        resto = bytearray()
        while True:
            # Tudo o que já chegou é aplicado em ordem e confirmado junto, num sendall só:
            # o líder manda várias REPLICATIONs de uma vez sob carga.
            pedidos = Mensagem.receber_lote(arquivo, resto)
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
            self.contador = max(self.contador, pedido.timestamp)
        # A linha sai quando a REPLICATION é aplicada: o console nunca mostra um ts que o
        # servidor ainda não tem.
        self.escrever("REPLICATION key:%s value:%s ts:%d"
                      % (Mensagem.mostrar(pedido.key), Mensagem.mostrar(pedido.value),
                         pedido.timestamp))
        return Mensagem(Mensagem.REPLICATION_OK, key=pedido.key, timestamp=pedido.timestamp)

    # ==== OS DOIS. GET, e o que ninguém pode mandar na porta de escuta

    # [5f] Recebe GET: devolve o valor só se o ts do servidor não for menor que o do cliente.
    def tratar_get(self, pedido, conexao):
        """GET em qualquer servidor: valor (ou NULL) e ts, ou TRY_OTHER_SERVER_OR_LATER."""
        with self.trava_tabela:
            value, timestamp = self.tabela.get(pedido.key, (None, 0))
        # A regra da seção 5f, em todo servidor e em todo estado (seguidor sem líder, líder
        # que acabou de subir): pode estar atrasado, mas nunca devolve algo mais velho que o
        # que o cliente já viu.
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

    def recusar_replicacao(self, pedido, conexao):
        """REPLICATION e JOIN_OK na porta de escuta: ninguém escreve por fora do líder."""
        return Mensagem(Mensagem.ERRO, value="%s só é aceito no canal que o seguidor abre ao "
                        "líder" % pedido.tipo)

    # ==== início: porta, laço de accept, configuração, perguntas

    @staticmethod
    def abrir_porta(ip, porta):
        """A porta de escuta, já aberta; OSError se não der (porta em uso, IP de fora)."""
        familia = socket.AF_INET6 if ":" in ip else socket.AF_INET
        # create_server só liga SO_REUSEADDR onde é seguro (não no Windows).
        ouvinte = socket.create_server((ip, porta), family=familia, backlog=256)
        ouvinte.settimeout(Servidor.FATIA)
        return ouvinte

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

    # [5b] Atende conexões simultâneas: uma thread (Conexao) por conexão aceita.
    def servir(self):
        """Laço de accept até parar; o prazo curto deixa Ctrl+C funcionar no Windows."""
        while not self.parar.is_set():
            try:
                sock, endereco = self.ouvinte.accept()
            except socket.timeout:
                continue
            except OSError:
                # Falta de descritores (EMFILE) e afins: espera um pouco e segue aceitando.
                self.parar.wait(0.1)
                continue
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.settimeout(None)
            except OSError:
                sock.close()  # o cliente desistiu entre o connect e o accept
                continue
            try:
                # [threads] Cada conexão ganha a sua thread.
                Servidor.Conexao(self, sock, endereco).start()
            except RuntimeError:
                sock.close()  # sem memória para outra thread: recusa esta conexão

    def fechar(self):
        """Para o laço de accept, fecha a porta e escreve o que ainda está na fila do console."""
        self.parar.set()
        if self.ouvinte is not None:
            self.ouvinte.close()
        if self.console.is_alive():
            self.enfileirar(None, None)
            self.console.join(Servidor.PRAZO_SAIDA)

    @staticmethod
    def separar(endereco):
        """ "ip:porta" -> (ip, porta)."""
        ip, _, porta = endereco.rpartition(":")
        return ip, int(porta)

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
        de_a, de_b = Mensagem.enderecos_de(a[0]), Mensagem.enderecos_de(b[0])
        if de_a & de_b:
            return True
        todas = {"0.0.0.0", "::"}
        return bool((de_a & todas and any(Servidor.local(e) for e in de_b)) or
                    (de_b & todas and any(Servidor.local(e) for e in de_a)))

    @staticmethod
    def ler_porta(texto):
        """Converte a porta digitada; ValueError com a frase para a pessoa."""
        if not Mensagem.porta_valida(texto):
            raise ValueError("Porta inválida: use um número de 1 a 65535.")
        return int(texto)

    @staticmethod
    def ler_ip(texto):
        """O IP digitado, se resolve; ValueError com a frase para a pessoa."""
        if not Mensagem.enderecos_de(texto):
            raise ValueError("IP inválido: %s não é um endereço conhecido." % texto)
        return texto

    @staticmethod
    def ler_atraso(texto):
        try:
            atraso = float(texto)
        except ValueError:
            atraso = -1.0
        if not 0 <= atraso <= Servidor.ATRASO_MAXIMO:
            raise ValueError("Atraso inválido: use segundos de 0 a %g." % Servidor.ATRASO_MAXIMO)
        return atraso

    @staticmethod
    def ler_prazo(texto):
        try:
            prazo = float(texto)
        except ValueError:
            prazo = 0.0
        if not 1 <= prazo <= Servidor.PRAZO_REPLICACAO_MAXIMO:
            raise ValueError("Prazo de replicação inválido: use segundos de 1 a %g."
                             % Servidor.PRAZO_REPLICACAO_MAXIMO)
        return prazo

    @staticmethod
    def ler_argumentos(argumentos):
        """Linha de comando -> (config ou None, opções para o construtor do Servidor)."""
        posicionais = []
        opcoes = {"atraso_replicacao": 0.0, "dados": None, "fsync": False,
                  "prazo_replicacao": Servidor.PRAZO_REPLICACAO, "detalhes": False}
        com_valor = {"--atraso-replicacao": ("atraso_replicacao", Servidor.ler_atraso),
                     "--prazo-replicacao": ("prazo_replicacao", Servidor.ler_prazo),
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
    def perguntar(texto, padrao, converter=str):
        """Pergunta até vir uma resposta válida; Enter aceita o padrão."""
        while True:
            resposta = input("%s [%s]: " % (texto, padrao)).strip()
            try:
                return converter(resposta or str(padrao))
            except ValueError as erro:
                print(erro, file=sys.stderr, flush=True)

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

    @staticmethod
    def perguntar_porta(ip):
        """Pergunta a porta e já a abre: em uso, é perguntada de novo na hora, não depois das
        perguntas do líder. (porta, ouvinte); None se o IP não serve (aí ele é perguntado)."""
        while True:
            porta = Servidor.perguntar("Porta", Servidor.PORTA_PADRAO, Servidor.ler_porta)
            try:
                return porta, Servidor.abrir_porta(ip, porta)
            except OSError as erro:
                print("Não foi possível abrir %s:%d: %s." % (ip, porta, Servidor.motivo(erro)),
                      file=sys.stderr, flush=True)
                if not Servidor.porta_em_uso(erro):
                    return None

    @staticmethod
    def porta_em_uso(erro):
        return erro.errno in (errno.EADDRINUSE, getattr(errno, "WSAEADDRINUSE", None))

    @staticmethod
    def motivo(erro):
        """Frase curta para um erro ao abrir a porta."""
        if isinstance(erro, socket.gaierror):
            return "IP inválido"
        if Servidor.porta_em_uso(erro):
            return "porta em uso"
        if erro.errno in (errno.EADDRNOTAVAIL, getattr(errno, "WSAEADDRNOTAVAIL", None)):
            return "o IP não é desta máquina"
        return erro.strerror or str(erro)

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
        except ValueError as erro:  # o registro em disco (--dados) não pôde ser lido
            servidor.fechar()
            print(erro, file=sys.stderr, flush=True)
            return 2
        except OSError as erro:
            servidor.fechar()
            print("Não foi possível abrir %s: %s."
                  % (servidor.endereco, Servidor.motivo(erro)), file=sys.stderr, flush=True)
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
