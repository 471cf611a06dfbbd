"""Mutações de uma linha: cada teste da suíte pega a quebra que o nome dele diz? Não faz parte
da suíte (leva minutos); roda à mão, numa cópia do repositório:

    python tests/mutacoes.py                 # todas
    python tests/mutacoes.py 5e-espera 5f-ts # só estas

Cada mutação troca um trecho de uma linha de um dos três arquivos por outro, que quebra um
comportamento do enunciado (4a-4c, 5a-5f, as linhas da seção 6) ou da recuperação e dos prazos,
e roda os testes cujo nome diz esse comportamento: "pega" se algum deles falha. O original
nunca é tocado: cada mutação roda numa pasta temporária com uma cópia do repositório.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time

RAIZ = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# (nome, arquivo, trecho, troca, testes que devem falhar: arquivo::nome, ou -k expressão)
MUTACOES = [
    # 4a: INIT
    ("4a-padroes", "Cliente.py", "PORTAS_PADRAO = (10097, 10098, 10099)",
     "PORTAS_PADRAO = (10097, 10098, 10098)", ["test_kv.py::test_menu_init_com_padroes"]),
    ("4a-zera", "Cliente.py", "        self.timestamps = {}\n        self.falhas = {}\n",
     "        self.falhas = {}\n",
     ["test_cliente.py::test_init_zera_timestamps_conexoes_e_falhas"]),
    # 4b, 4c: PUT e GET do cliente
    ("4b-sorteio", "Cliente.py", "random.shuffle(fila)", "fila.sort()",
     ["test_kv.py::test_cliente_sorteia_o_servidor_de_cada_pedido"]),
    ("4b-ts-do-put", "Cliente.py",
     "        if resposta.tipo == Mensagem.PUT_OK:\n            self.atualizar(",
     "        if resposta.tipo == Mensagem.ERRO:\n            self.atualizar(",
     ["test_kv.py::test_biblioteca_put_get_e_timestamps"]),
    ("4c-ts-enviado", "Cliente.py", "timestamp=self.timestamps.get(key, 0))", "timestamp=0)",
     ["test_kv.py::test_regra_do_get", "test_kv.py::test_biblioteca_put_get_e_timestamps"]),
    ("4c-so-sobe", "Cliente.py", "if timestamp > self.timestamps.get(key, 0):", "if True:",
     ["test_cliente.py::test_timestamp_do_cliente_so_sobe"]),
    # Seção 6: as linhas do cliente
    ("6-linha-put-ok", "Cliente.py", '"PUT_OK key: %s value %s timestamp %d',
     '"PUT_OK key: %s value: %s timestamp %d', ["test_kv.py::test_linhas_exatas_do_menu_do_cliente"]),
    ("6-linha-get", "Cliente.py", "meu timestamp %d e do servidor %d", "meu ts %d e do servidor %d",
     ["test_kv.py::test_linhas_exatas_do_menu_do_cliente"]),
    # 5a: inicialização
    ("5a-porta-padrao", "Servidor.py", "PORTA_PADRAO = 10097", "PORTA_PADRAO = 10098",
     ["test_kv.py::test_servidor_pergunta_com_padroes_e_repete_resposta_invalida"]),
    ("5a-join-sem-ts", "Servidor.py", "origem=self.endereco, timestamp=maior_ts,",
     "origem=self.endereco, timestamp=0,",
     ["test_suite_lider_falso.py::"
      "test_seguidor_que_perde_o_canal_refaz_o_join_com_o_maior_ts_e_a_tabela"]),
    # 5b: uma thread por conexão
    ("5b-thread", "Servidor.py", "Servidor.Conexao(self, sock, endereco).start()",
     "Servidor.Conexao(self, sock, endereco).run()",
     ["test_regras.py::test_servidor_tem_thread_por_conexao"]),
    # 5c: PUT
    ("5c-contador", "Servidor.py", "self.contador += 1", "self.contador += 2",
     ["test_kv.py::test_um_contador_global_para_todas_as_keys"]),
    ("5c-tabela", "Servidor.py", "            self.tabela[key] = (value, timestamp)\n",
     "            self.tabela.setdefault(key, (value, timestamp))\n",
     ["test_kv.py::test_put_no_lider_grava_na_tabela_e_troca_value_e_ts_da_key"]),
    ("5c-replica", "Servidor.py", "self.replicar(linha, (timestamp,), self.seguidores.values())",
     "self.replicar(linha, (timestamp,), [])",
     ["test_kv.py::test_replication_chega_a_todos_antes_do_put_ok"]),
    ("5c-origem", "Servidor.py", "        pedido.origem = conexao.cliente\n",
     "        pedido.origem = \"127.0.0.1:1\"\n",
     ["test_kv.py::test_put_no_seguidor_e_encaminhado_com_endereco_do_cliente"]),
    ("5c-sem-voltas", "Servidor.py", "        if pedido.origem is not None:\n            # Já",
     "        if False:\n            # Já",
     ["test_falhas.py::test_dois_servidores_que_se_apontam_como_lider_nao_dao_voltas"]),
    ("6-linha-lider-put", "Servidor.py", '"Cliente %s PUT key:%s value:%s"',
     '"Cliente %s PUT key: %s value:%s"', ["test_kv.py::test_linhas_exatas_de_put_no_lider"]),
    ("6-linha-encaminhando", "Servidor.py", '"Encaminhando PUT key:%s value:%s"',
     '"Encaminhando PUT key:%s value %s"',
     ["test_kv.py::test_put_no_seguidor_e_encaminhado_com_endereco_do_cliente"]),
    # 5d: REPLICATION
    ("5d-mais-velha", "Servidor.py", "if atual is None or atual[1] <= pedido.timestamp:",
     "if True:", ["test_suite_lider_falso.py::"
                  "test_replication_mais_velha_que_a_do_seguidor_e_confirmada_e_nao_aplicada"]),
    ("5d-copia-velha", "Servidor.py", "if resposta.timestamp < self.maior_ts:", "if False:",
     ["test_suite_lider_falso.py::test_copia_mais_velha_que_o_seguidor_e_recusada"]),
    ("6-linha-replication", "Servidor.py", '"REPLICATION key:%s value:%s ts:%d"',
     '"REPLICATION key:%s value:%s ts: %d"', ["test_kv.py::test_linhas_exatas_de_put_no_lider"]),
    # 5e: REPLICATION_OK e PUT_OK
    ("5e-espera", "Servidor.py", "        self.esperar_confirmacoes(timestamp, origens)\n",
     "        pass\n", ["test_kv.py::test_replication_chega_a_todos_antes_do_put_ok"]),
    ("5e-todos", "Servidor.py", "if seguidor is not None and seguidor.confirmado < timestamp:",
     "if False:", ["test_kv.py::test_replication_chega_a_todos_antes_do_put_ok"]),
    ("6-linha-put-ok-lider", "Servidor.py", '"Enviando PUT_OK ao Cliente %s da key:%s ts:%d"',
     '"Enviando PUT_OK ao cliente %s da key:%s ts:%d"',
     ["test_kv.py::test_linhas_exatas_de_put_no_lider"]),
    # 5f: GET
    ("5f-ts", "Servidor.py", "if timestamp >= pedido.timestamp:",
     "if timestamp > pedido.timestamp:", ["test_kv.py::test_regra_do_get"]),
    ("5f-velho", "Servidor.py", "if timestamp >= pedido.timestamp:", "if True:",
     ["test_kv.py::test_regra_do_get",
      "test_kv.py::test_seguidor_lento_mostra_try_other_e_nunca_valor_velho"]),
    ("5f-null", "Mensagem.py", '            return "NULL"', '            return "None"',
     ["test_kv.py::test_linhas_exatas_de_get"]),
    ("6-linha-get-servidor", "Servidor.py", "Meu ts é %d, portanto devolvendo %s",
     "Meu ts é %d, devolvendo %s", ["test_kv.py::test_linhas_exatas_de_get"]),
    # Prazos e faltas (SPEC §4)
    ("prazo-confirmacao", "Servidor.py", "time.monotonic() > servidor.limite(self):",
     "time.monotonic() > servidor.limite(self) + 3600:",
     ["test_falhas.py::test_seguidor_pausado_e_par_que_nao_confirma_sao_retirados_e_voltam"]),
    ("prazo-unico", "Servidor.py",
     "        return max(envio, seguidor.progresso) + self.prazo_replicacao\n",
     "        return time.monotonic() + self.prazo_replicacao\n",
     ["test_limites.py::test_dois_seguidores_travados_custam_um_prazo_so"]),
    ("keepalive", "Servidor.py", "socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)",
     "socket.SOL_SOCKET, socket.SO_KEEPALIVE, 0)",
     ["test_maquinas.py::test_maquina_de_um_seguidor_some_e_o_lider_o_tira_sem_precisar_de_put"]),
    ("limite-de-descritores", "Servidor.py", "if reserva is not None and erro.errno in",
     "if False and erro.errno in",
     ["test_escala.py::test_servidor_no_limite_de_descritores_fecha_a_nova_e_serve_as_outras"]),
    ("falta-local", "Servidor.py", "if not enviado and erro.errno in Servidor.FALTAS_LOCAIS:",
     "if False:", ["test_escala.py::test_seguidor_sem_descritores_nao_diz_que_o_lider_caiu"]),
    ("origem-forjada", "Mensagem.py", "tipo == cls.JOIN and nome.isascii() and nome.isalnum())",
     "nome.isascii() or True)", ["test_limites.py::test_origem_de_put_que_nao_e_endereco_recebe_erro"]),
    # Recuperação (SPEC §4)
    ("historia", "Servidor.py", "        self.esperar_historia()  #", "        pass  #",
     ["test_recuperacao.py::test_lider_reiniciado_nao_da_timestamp_antes_de_ouvir_um_seguidor"]),
    ("fusao-conflito", "Servidor.py", "                conflitos.append(key)\n",
     "                pass\n",
     ["test_recuperacao.py::"
      "test_escrita_do_lider_novo_sobe_acima_de_uma_versao_de_antes_com_ts_maior"]),
    ("fusao-pequena", "Servidor.py", "for key in sorted(conflitos, key=",
     "for key in sorted(self.proprias if contador > self.contador else conflitos, key=",
     ["test_limites.py::test_join_pequeno_nao_refaz_as_escritas_do_lider"]),
    ("registro-volta", "Servidor.py", "inicio = os.fstat(self.registro.fileno()).st_size",
     "inicio = self.registro.tell()",
     ["test_limites.py::test_gravacao_que_falha_deixa_o_registro_como_estava"]),
    ("compactacao", "Servidor.py", "if self.linhas_registro > 2 * len(self.tabela) + 1000:",
     "if self.linhas_registro > 2 * len(self.tabela) + 1000 and False:",
     ["test_recuperacao.py::test_registro_e_compactado_e_volta_igual"]),
    ("join-montado-antes", "Servidor.py", "                    if servidor.tabela is not tabela:",
     "                    if True:",
     ["test_limites.py::test_join_e_montado_uma_vez_por_canal_perdido"]),
    ("console-na-saida", "Servidor.py", "self.console.join(Servidor.PRAZO_SAIDA)", "pass",
     ["test_falhas.py::test_linhas_na_fila_saem_antes_de_um_fim_limpo"]),
]


def copiar(destino):
    def ignorar(pasta, nomes):
        return [n for n in nomes if n in (".git", "__pycache__", ".pytest_cache", "_build",
                                          "_saida", ".venv")]
    shutil.copytree(RAIZ, destino, ignore=ignorar)


def rodar(nome, arquivo, trecho, troca, testes):
    with tempfile.TemporaryDirectory() as pasta:
        copia = os.path.join(pasta, "repo")
        copiar(copia)
        caminho = os.path.join(copia, arquivo)
        with open(caminho, encoding="utf-8") as f:
            texto = f.read()
        if texto.count(trecho) != 1:
            return "trecho não achado (%d vezes)" % texto.count(trecho)
        with open(caminho, "w", encoding="utf-8") as f:
            f.write(texto.replace(trecho, troca))
        alvos = []
        for teste in testes:
            if teste.startswith("-k "):
                alvos += ["tests", "-k", teste[3:]]
            elif os.path.exists(os.path.join(copia, "tests", teste.split("::")[0])):
                alvos.append("tests/" + teste)
        if not alvos:
            return "nenhum teste achado"
        inicio = time.monotonic()
        resultado = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p",
                                    "no:cacheprovider"] + alvos, cwd=copia,
                                   capture_output=True, text=True, timeout=900)
        ultima = (resultado.stdout.strip().splitlines() or ["?"])[-1]
        segundos = time.monotonic() - inicio
        if resultado.returncode == 1:
            return "PEGA (%.0f s): %s" % (segundos, ultima)
        if resultado.returncode == 0:
            return "ESCAPA (%.0f s): %s" % (segundos, ultima)
        return "erro %d (%.0f s): %s" % (resultado.returncode, segundos, ultima)


def principal(nomes):
    escolhidas = [m for m in MUTACOES if not nomes or m[0] in nomes]
    escapam = 0
    for mutacao in escolhidas:
        situacao = rodar(*mutacao)
        escapam += not situacao.startswith("PEGA")
        print("%-24s %s" % (mutacao[0], situacao), flush=True)
    print("%d mutações, %d pegas, %d não" % (len(escolhidas), len(escolhidas) - escapam, escapam))
    return 1 if escapam else 0


if __name__ == "__main__":
    sys.exit(principal(sys.argv[1:]))
