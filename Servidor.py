"""Servidor do KV Store: líder ou seguidor, uma thread por conexão (SPEC, seções 2 a 5)."""

import errno
import os
import select
import socket
import sys
import threading
from collections import deque

from Mensagem import Mensagem


class Servidor:
    """Um servidor do KV store; é o líder quando o próprio endereço é o do líder."""

    IP_PADRAO = "127.0.0.1"
    PORTA_PADRAO = 10097
    INTERVALO_ACCEPT = 0.5   # accept() com prazo: no Windows um accept() bloqueado ignora Ctrl+C
    PRAZO_CONEXAO = 3.0      # para conectar ao líder
    PRAZO_LINHA = 10.0       # para terminar uma linha já começada (cliente que trava no meio)
    PRAZO_JOIN = 30.0        # para o líder responder ao JOIN com o snapshot
    INTERVALO_REJOIN = 0.5   # entre tentativas do seguidor de entrar no líder
    USO = ("uso: python Servidor.py [IP PORTA IP_DO_LIDER PORTA_DO_LIDER]"
           " [--atraso-replicacao SEGUNDOS]")

    def __init__(self, ip, porta, ip_lider, porta_lider, atraso_replicacao=0.0):
        self.ip = ip
        self.porta = porta
        self.endereco = "%s:%d" % (ip, porta)
        self.lider = (ip_lider, porta_lider)
        self.endereco_lider = "%s:%d" % self.lider
        self.eh_lider = Servidor.mesmo_endereco((ip, porta), self.lider)
        self.atraso_replicacao = atraso_replicacao
        # A tabela: key -> (value, timestamp). Entradas são trocadas, nunca alteradas.
        self.tabela = {}
        # Líder: o contador lógico global (como o zxid). Seguidor: o maior ts já aplicado.
        self.contador = 0
        # Ordem fixa: trava_put antes de trava_tabela. A de tabela nunca fica presa em rede.
        self.trava_put = threading.Lock()
        self.trava_tabela = threading.Lock()
        # Folhas: nunca se pega outra trava com uma destas.
        self.trava_confirmacao = threading.Lock()
        self.trava_saida = threading.Lock()
        # Líder: origem "ip:porta" do seguidor -> a Conexao que é o seu canal de replicação.
        self.canais = {}
        # Seguidor: só responde GET com valor depois de receber o snapshot do líder.
        self.juntou = self.eh_lider
        self.parar = threading.Event()
        self.ouvinte = None
        # Tabela de despacho: tipo -> tratador. Tipo fora dela recebe ERRO.
        self.tratadores = {
            Mensagem.PUT: self.tratar_put,
            Mensagem.GET: self.tratar_get,
            Mensagem.JOIN: self.tratar_join,
            Mensagem.REPLICATION_OK: self.tratar_replication_ok,
            Mensagem.REPLICATION: self.recusar_replicacao,
            Mensagem.JOIN_OK: self.recusar_replicacao,
        }

    # ------------------------------------------------------------------ threads

    class Conexao(threading.Thread):
        """Atende uma conexão aceita: lê requisição, trata, responde, até ela fechar."""

        def __init__(self, servidor, sock, endereco):
            super().__init__(daemon=True, name="conexao-%s:%d" % endereco[:2])
            self.servidor = servidor
            self.sock = sock
            self.cliente = "%s:%d" % endereco[:2]
            # Se a conexão virar canal de replicação (JOIN): a origem do seguidor e, em
            # ordem, (ts, espera) de cada REPLICATION ainda sem REPLICATION_OK.
            self.origem = None
            self.pendentes = deque()
            # Canal: as linhas de REPLICATION em ordem de ts, ainda por enviar (ver enviar_fila).
            self.saida = deque()
            self.trava_envio = threading.Lock()
            # Seguidor: conexão própria ao líder para encaminhar PUTs, aberta no primeiro.
            self.encaminhamento = None

        def run(self):
            servidor = self.servidor
            arquivo = self.sock.makefile("rb", buffering=64 * 1024)
            try:
                while True:
                    try:
                        pedido = servidor.ler_pedido(self.sock, arquivo)
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
                    try:
                        resposta = servidor.despachar(pedido, self)
                    except OSError:
                        raise  # rede: encerra esta conexão, como abaixo
                    except Exception as erro:  # defeito nosso: esta conexão não derruba o resto
                        servidor.avisar("Erro interno ao tratar %s: %r" % (pedido.tipo, erro))
                        resposta = Mensagem(Mensagem.ERRO, value="erro interno do servidor")
                    if resposta is not None:
                        resposta.enviar(self.sock)
            except OSError:
                pass  # o outro lado caiu ou fechou: nada a responder
            finally:
                if self.origem is not None:
                    servidor.descartar_canal(self)
                if self.encaminhamento is not None:
                    self.encaminhamento[0].close()
                arquivo.close()
                # Um PUT pode estar num sendall deste canal (enviar_fila): fecha só depois dele.
                with self.trava_envio:
                    self.sock.close()

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
                try:
                    sock = socket.create_connection(servidor.lider, Servidor.PRAZO_CONEXAO)
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    sock.settimeout(Servidor.PRAZO_JOIN)
                    arquivo = sock.makefile("rb")
                    Mensagem(Mensagem.JOIN, origem=servidor.endereco).enviar(sock)
                    # Sem limite de linha: só o líder fala aqui, e o snapshot passa de 16 MiB.
                    servidor.aplicar_snapshot(Mensagem.receber(arquivo, limite=None))
                    avisado = None
                    # Daqui em diante o líder fala quando há PUT: espera sem prazo.
                    sock.settimeout(None)
                    resto = bytearray()
                    while True:
                        # Tudo o que já chegou é aplicado em ordem e confirmado junto, num
                        # sendall só: o líder manda várias REPLICATIONs de uma vez sob carga.
                        pedidos = Mensagem.receber_lote(arquivo, resto)
                        if pedidos is None:
                            break
                        if servidor.atraso_replicacao > 0:
                            # Demonstração: cada REPLICATION confirmada assim que aplicada.
                            for pedido in pedidos:
                                servidor.tratar_replicacao(pedido).enviar(sock)
                        elif pedidos:
                            sock.sendall(b"".join(servidor.tratar_replicacao(p).para_linha()
                                                  for p in pedidos))
                except OSError:
                    pass  # líder fora do ar ou caiu: tenta de novo, em silêncio
                except ValueError as erro:
                    # O líder recusou o JOIN ou falou fora do protocolo: diz uma vez só.
                    if str(erro) != avisado:
                        avisado = str(erro)
                        servidor.avisar("Canal com o líder %s recusado: %s"
                                        % (servidor.endereco_lider, erro))
                finally:
                    if sock is not None:
                        sock.close()
                servidor.parar.wait(Servidor.INTERVALO_REJOIN)

    # ---------------------------------------------------------------- ciclo de vida

    # [5a] Inicialização: abre a porta; o seguidor começa a entrar no líder (JOIN).
    def abrir(self):
        """Abre a porta de escuta (OSError se não der) e, no seguidor, o canal com o líder."""
        familia = socket.AF_INET6 if ":" in self.ip else socket.AF_INET
        # create_server só liga SO_REUSEADDR onde é seguro (não no Windows).
        self.ouvinte = socket.create_server((self.ip, self.porta), family=familia, backlog=256)
        self.ouvinte.settimeout(Servidor.INTERVALO_ACCEPT)
        if not self.eh_lider:
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
        """Para o laço de accept e fecha a porta."""
        self.parar.set()
        if self.ouvinte is not None:
            self.ouvinte.close()

    # ----------------------------------------------------------- entrada e saída

    def ler_pedido(self, sock, arquivo):
        """Lê a próxima requisição; espera sem prazo por uma nova, com prazo pelo resto dela."""
        # peek bloqueia só enquanto a conexão está ociosa e não consome nada.
        inicio = arquivo.peek(1)
        if not inicio or b"\n" in inicio:
            return Mensagem.receber(arquivo)
        sock.settimeout(Servidor.PRAZO_LINHA)
        try:
            return Mensagem.receber(arquivo)
        finally:
            sock.settimeout(None)

    def despachar(self, pedido, conexao):
        """Chama o tratador do tipo; tipo sem tratador (uma resposta, p. ex.) recebe ERRO."""
        if conexao.origem is not None and pedido.tipo != Mensagem.REPLICATION_OK:
            # Num canal de replicação o seguidor só confirma; outra coisa derruba o canal.
            Servidor.derrubar(conexao.sock)
            return None
        tratador = self.tratadores.get(pedido.tipo)
        if tratador is None:
            return Mensagem(Mensagem.ERRO, value="%s não é uma requisição" % pedido.tipo)
        return tratador(pedido, conexao)

    def escrever(self, linha):
        """Uma linha da SPEC seção 3 no console; a trava impede linhas misturadas."""
        with self.trava_saida:
            try:
                print(linha, flush=True)
            except (OSError, ValueError):
                pass  # console fechado: o servidor continua servindo

    def avisar(self, linha):
        """Uma linha de erro para a pessoa, em stderr (stdout fica só com a SPEC seção 3)."""
        with self.trava_saida:
            try:
                print(linha, file=sys.stderr, flush=True)
            except (OSError, ValueError):
                pass

    @staticmethod
    def mostrar(valor):
        return "NULL" if valor is None else valor

    # ------------------------------------------------------------------- PUT

    # [5c] PUT: o líder grava com o próximo timestamp; o seguidor encaminha ao líder.
    def tratar_put(self, pedido, conexao):
        """PUT no líder: timestamp global, grava, replica e só então responde PUT_OK."""
        if not self.eh_lider:
            return self.encaminhar_put(pedido, conexao)
        cliente = pedido.origem or conexao.cliente
        self.escrever("Cliente %s PUT key:%s value:%s"
                      % (cliente, pedido.key, Servidor.mostrar(pedido.value)))
        timestamp, espera = self.gravar_e_replicar(pedido.key, pedido.value)
        # [5e] PUT_OK só depois do REPLICATION_OK de todos os seguidores.
        if espera is not None:
            espera[1].acquire()
        self.escrever("Enviando PUT_OK ao Cliente %s da key:%s ts:%d"
                      % (cliente, pedido.key, timestamp))
        return Mensagem(Mensagem.PUT_OK, key=pedido.key, value=pedido.value, timestamp=timestamp)

    def gravar_e_replicar(self, key, value):
        """Sob a trava de PUT: timestamp, tabela, e a REPLICATION posta em cada canal.

        Os PUTs ficam em ordem total, mas a trava não espera os REPLICATION_OK: PUTs de
        outros clientes seguem logo atrás no mesmo canal (pipeline, confirmado em ordem).
        O envio em si fica fora da trava de PUT (enviar_fila).
        Devolve (timestamp, espera); espera é [faltam, trava] ou None sem seguidores.
        """
        with self.trava_put:
            self.contador += 1
            timestamp = self.contador
            with self.trava_tabela:
                self.tabela[key] = (value, timestamp)
            canais = list(self.canais.values())
            if not canais:
                return timestamp, None
            # A trava nasce fechada e a última confirmação a abre: acordar quem espera custa
            # um futex (o Event cria uma Condition e mais uma trava a cada espera).
            espera = [len(canais), threading.Lock()]
            espera[1].acquire()
            # [5d] REPLICATION a cada seguidor, serializada uma vez só.
            linha = Mensagem(Mensagem.REPLICATION, key=key, value=value,
                             timestamp=timestamp).para_linha()
            for canal in canais:
                # Registra antes de enviar: a confirmação pode chegar antes do sendall voltar.
                canal.pendentes.append((timestamp, espera))
                canal.saida.append(linha)
        for canal in canais:
            self.enviar_fila(canal)
        return timestamp, espera

    def enviar_fila(self, canal):
        """Envia num sendall só, em ordem, as REPLICATIONs que estão na fila do canal.

        A fila entra em ordem de ts (sob a trava de PUT) e sai em ordem (sob a trava de envio).
        Se outra thread está enviando, ela leva a nossa linha também: ao soltar a trava, quem
        envia olha a fila de novo. Assim PUTs simultâneos viajam juntos e ninguém espera numa
        trava enquanto outro usa a rede.
        """
        while canal.saida:
            if not canal.trava_envio.acquire(blocking=False):
                return
            try:
                linhas = []
                while canal.saida:
                    linhas.append(canal.saida.popleft())
                canal.sock.sendall(b"".join(linhas))
            except OSError:
                # Seguidor morreu: a thread do canal acorda, descarta e confirma os pendentes.
                Servidor.derrubar(canal.sock)
            finally:
                canal.trava_envio.release()

    def confirmar(self, espera):
        """Conta uma confirmação (ou um seguidor descartado) de um PUT que espera."""
        with self.trava_confirmacao:
            espera[0] -= 1
            pronto = espera[0] == 0
        if pronto:
            espera[1].release()

    def encaminhar_put(self, pedido, conexao):
        """Seguidor: passa o PUT ao líder com a origem do cliente e devolve a resposta dele."""
        self.escrever("Encaminhando PUT key:%s value:%s"
                      % (pedido.key, Servidor.mostrar(pedido.value)))
        pedido.origem = conexao.cliente
        try:
            sock, arquivo = self.conexao_ao_lider(conexao)
            pedido.enviar(sock)
            resposta = Mensagem.receber(arquivo, limite=Mensagem.LIMITE_RESPOSTA)
        except (OSError, ValueError):
            resposta = None
        if resposta is not None:
            return resposta
        # Sem nova tentativa: se o líder fez o PUT e só a resposta se perdeu, repetir gravaria
        # duas vezes. O cliente recebe ERRO e decide.
        if conexao.encaminhamento is not None:
            conexao.encaminhamento[0].close()
            conexao.encaminhamento = None
        self.avisar("Líder %s indisponível: PUT key:%s não foi feito"
                    % (self.endereco_lider, pedido.key))
        return Mensagem(Mensagem.ERRO, value="líder %s indisponível" % self.endereco_lider)

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
            sock.settimeout(None)  # um PUT pode esperar seguidores lentos
            conexao.encaminhamento = (sock, sock.makefile("rb"))
        return conexao.encaminhamento

    # ---------------------------------------------------------- JOIN e canais

    # [5a] JOIN no líder: manda o snapshot da tabela; a conexão vira o canal de replicação.
    def tratar_join(self, pedido, conexao):
        """Líder: manda o snapshot e faz desta conexão o canal de replicação do seguidor."""
        if not self.eh_lider:
            return Mensagem(Mensagem.ERRO,
                            value="este servidor é seguidor; o líder é %s" % self.endereco_lider)
        if conexao.origem is not None:
            return Mensagem(Mensagem.ERRO, value="esta conexão já é um canal de replicação")
        if pedido.origem == self.endereco:
            return Mensagem(Mensagem.ERRO, value="JOIN com o endereço do próprio líder")
        with self.trava_put:
            antigo = self.canais.get(pedido.origem)
            if antigo is not None:
                # O seguidor voltou: o canal velho sai (a thread dele confirma os pendentes).
                Servidor.derrubar(antigo.sock)
            # Sob a trava de PUT: o snapshot inclui todo PUT já feito e precede as REPLICATIONs.
            # Só PUTs mudam a tabela do líder, e eles esperam esta trava: dá para ler sem cópia.
            resposta = Mensagem(Mensagem.JOIN_OK, dados=self.tabela, timestamp=self.contador)
            # Com prazo: quem manda JOIN e não lê o snapshot não segura a trava de PUT.
            conexao.sock.settimeout(Servidor.PRAZO_JOIN)
            resposta.enviar(conexao.sock)
            conexao.sock.settimeout(None)
            conexao.origem = pedido.origem
            self.canais[pedido.origem] = conexao
        return None

    def tratar_replication_ok(self, pedido, conexao):
        """Líder: REPLICATION_OK confirma, em ordem, a REPLICATION mais antiga do canal."""
        if conexao.origem is None:
            return Mensagem(Mensagem.ERRO, value="REPLICATION_OK fora de um canal de replicação")
        try:
            timestamp, espera = conexao.pendentes.popleft()
        except IndexError:
            timestamp, espera = None, None
        if timestamp != pedido.timestamp:
            # Fora de ordem: o canal não é confiável. Derruba; o seguidor refaz o JOIN.
            if espera is not None:
                self.confirmar(espera)
            Servidor.derrubar(conexao.sock)
            return None
        self.confirmar(espera)
        return None

    def descartar_canal(self, canal):
        """Canal caiu: sai do conjunto e libera os PUTs que esperavam por ele."""
        with self.trava_put:
            if self.canais.get(canal.origem) is canal:
                del self.canais[canal.origem]
            # Sob a trava de PUT ninguém mais põe pendentes neste canal.
            while canal.pendentes:
                self.confirmar(canal.pendentes.popleft()[1])

    @staticmethod
    def derrubar(sock):
        """Acorda quem lê o socket com erro/EOF; quem o lê é quem o fecha."""
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # ------------------------------------------------------------- REPLICATION

    def recusar_replicacao(self, pedido, conexao):
        """REPLICATION e JOIN_OK na porta de escuta: ninguém escreve por fora do líder."""
        return Mensagem(Mensagem.ERRO,
                        value="%s só é aceito no canal que o seguidor abre ao líder" % pedido.tipo)

    def aplicar_snapshot(self, resposta):
        """Seguidor: a tabela passa a ser o snapshot do JOIN_OK."""
        if resposta is None:
            raise OSError("o líder fechou o canal")
        if resposta.tipo != Mensagem.JOIN_OK:
            raise ValueError(resposta.value if resposta.tipo == Mensagem.ERRO
                             else "resposta %s ao JOIN" % resposta.tipo)
        tabela = {key: (value, ts) for key, (value, ts) in resposta.dados.items()}
        with self.trava_tabela:
            self.tabela = tabela
            self.contador = resposta.timestamp
            self.juntou = True

    # [5d] REPLICATION no seguidor: aplica (salvo se já tem mais novo) e confirma.
    def tratar_replicacao(self, pedido):
        """Seguidor, só no canal com o líder: aplica a REPLICATION e devolve REPLICATION_OK."""
        if pedido.tipo != Mensagem.REPLICATION:
            raise ValueError("o líder enviou %s no canal de replicação" % pedido.tipo)
        if self.atraso_replicacao > 0:
            # Atraso de demonstração (SPEC 6): deixa ver TRY_OTHER_SERVER_OR_LATER de verdade.
            self.parar.wait(self.atraso_replicacao)
        with self.trava_tabela:
            atual = self.tabela.get(pedido.key)
            if atual is None or atual[1] <= pedido.timestamp:
                self.tabela[pedido.key] = (pedido.value, pedido.timestamp)
            self.contador = max(self.contador, pedido.timestamp)
        # A linha sai quando a REPLICATION é aplicada: o console nunca mostra um ts que o
        # servidor ainda não tem.
        self.escrever("REPLICATION key:%s value:%s ts:%d"
                      % (pedido.key, Servidor.mostrar(pedido.value), pedido.timestamp))
        return Mensagem(Mensagem.REPLICATION_OK, key=pedido.key, timestamp=pedido.timestamp)

    # ------------------------------------------------------------------- GET

    # [5f] GET: devolve o valor só se o timestamp do servidor não for menor que o do cliente.
    def tratar_get(self, pedido, conexao):
        """GET em qualquer servidor: valor (ou NULL) e ts, ou TRY_OTHER_SERVER_OR_LATER."""
        with self.trava_tabela:
            value, timestamp = self.tabela.get(pedido.key, (None, 0))
            juntou = self.juntou
        if juntou and timestamp >= pedido.timestamp:
            resposta = Mensagem(Mensagem.GET_OK, key=pedido.key, value=value, timestamp=timestamp)
            devolvido = Servidor.mostrar(value)
        else:
            resposta = Mensagem(Mensagem.TRY_OTHER_SERVER_OR_LATER, key=pedido.key,
                                timestamp=timestamp)
            devolvido = Mensagem.TRY_OTHER_SERVER_OR_LATER
        self.escrever("Cliente %s GET key:%s ts:%d. Meu ts é %d, portanto devolvendo %s"
                      % (conexao.cliente, pedido.key, pedido.timestamp, timestamp, devolvido))
        return resposta

    # ------------------------------------------------------- configuração

    @staticmethod
    def mesmo_endereco(a, b):
        """Compara endereços resolvendo nomes (localhost e 127.0.0.1 são o mesmo)."""
        def resolver(endereco):
            try:
                return socket.getaddrinfo(endereco[0], endereco[1], 0, socket.SOCK_STREAM)[0][4][:2]
            except (OSError, UnicodeError):
                return endereco
        return a == b or resolver(a) == resolver(b)

    @staticmethod
    def porta_valida(texto):
        """Converte a porta digitada; ValueError com a frase para a pessoa."""
        if not texto.isdigit() or not 1 <= int(texto) <= 65535:
            raise ValueError("Porta inválida: use um número de 1 a 65535.")
        return int(texto)

    @staticmethod
    def atraso_valido(texto):
        try:
            atraso = float(texto)
        except ValueError:
            atraso = -1.0
        if not 0 <= atraso <= 3600:
            raise ValueError("Atraso inválido: use segundos de 0 a 3600.")
        return atraso

    @staticmethod
    def ler_argumentos(argumentos):
        """Linha de comando -> (ip, porta, ip_lider, porta_lider ou None, atraso)."""
        posicionais = []
        atraso = 0.0
        i = 0
        while i < len(argumentos):
            arg = argumentos[i]
            if arg in ("-h", "--help", "--ajuda"):
                print(Servidor.USO)
                raise SystemExit(0)
            if arg == "--atraso-replicacao" and i + 1 < len(argumentos):
                atraso = Servidor.atraso_valido(argumentos[i + 1])
                i += 1
            elif arg.startswith("--atraso-replicacao="):
                atraso = Servidor.atraso_valido(arg.split("=", 1)[1])
            elif arg.startswith("-"):
                raise ValueError("Opção desconhecida: %s" % arg)
            else:
                posicionais.append(arg)
            i += 1
        if len(posicionais) not in (0, 4):
            raise ValueError("Informe os quatro valores (IP PORTA IP_DO_LIDER PORTA_DO_LIDER)"
                             " ou nenhum.")
        if not posicionais:
            return None, atraso
        ip, porta, ip_lider, porta_lider = posicionais
        return (ip, Servidor.porta_valida(porta), ip_lider,
                Servidor.porta_valida(porta_lider)), atraso

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
    def motivo(erro):
        """Frase curta para um erro ao abrir a porta."""
        if isinstance(erro, socket.gaierror):
            return "IP inválido"
        if erro.errno in (errno.EADDRINUSE, getattr(errno, "WSAEADDRINUSE", None)):
            return "porta em uso"
        return erro.strerror or str(erro)

    @staticmethod
    def principal(argumentos):
        """Configura (argumentos ou perguntas), abre a porta e serve até Ctrl+C."""
        try:
            config, atraso = Servidor.ler_argumentos(argumentos)
        except ValueError as erro:
            print("%s\n%s" % (erro, Servidor.USO), file=sys.stderr)
            return 2
        while True:
            if config is None:
                ip = Servidor.perguntar("IP", Servidor.IP_PADRAO)
                porta = Servidor.perguntar("Porta", Servidor.PORTA_PADRAO, Servidor.porta_valida)
                ip_lider = Servidor.perguntar("IP do líder", Servidor.IP_PADRAO)
                porta_lider = Servidor.perguntar("Porta do líder", Servidor.PORTA_PADRAO,
                                                 Servidor.porta_valida)
            else:
                ip, porta, ip_lider, porta_lider = config
            servidor = Servidor(ip, porta, ip_lider, porta_lider, atraso)
            try:
                servidor.abrir()
                break
            except OSError as erro:
                print("Não foi possível abrir %s: %s." % (servidor.endereco, Servidor.motivo(erro)),
                      file=sys.stderr, flush=True)
                if config is not None:
                    return 2
        if atraso and servidor.eh_lider:
            servidor.avisar("Aviso: --atraso-replicacao vale só para seguidores; ignorado.")
        try:
            servidor.servir()
        finally:
            servidor.fechar()  # Ctrl+C: a porta fecha antes de o processo sair
        return 0


def main():
    # Console que não sabe mostrar um caractere troca por "?" em vez de derrubar o servidor.
    sys.stdout.reconfigure(errors="replace")
    sys.stderr.reconfigure(errors="replace")
    try:
        codigo = Servidor.principal(sys.argv[1:])
    except (KeyboardInterrupt, EOFError):
        codigo = 0
    # Sai já, sem esperar threads de conexão (daemon) que podem estar no meio de um print.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(codigo)


if __name__ == "__main__":
    main()
