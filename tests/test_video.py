"""O vídeo (relatorio/video.py): uma gravação curta de uma execução real, lida de volta."""

import json
import os
import re
import subprocess
import sys

import imageio_ffmpeg

from conftest import RAIZ

PRAZO_VIDEO = 180.0      # a execução rápida leva ~20 s, a codificação poucos segundos: é o teto
CONSOLES = ("líder", "seguidor", "seguidor lento", "cliente A", "cliente B")


def gravar(pasta):
    """Roda video.py --rapido como a pessoa rodaria, em portas livres; devolve o processo."""
    ambiente = dict(os.environ, PYTHONIOENCODING="utf-8")
    return subprocess.run(
        [sys.executable, os.path.join("relatorio", "video.py"), "--rapido", "--portas-livres",
         "--saida", pasta, "--nome", "Ana Teste", "--ra", "123456"],
        cwd=RAIZ, env=ambiente, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        universal_newlines=True, encoding="utf-8", timeout=PRAZO_VIDEO)


def ler_transcricao(caminho):
    """As linhas "vídeo | relógio | console | texto" da transcrição; o cabeçalho à parte."""
    cabecalho, linhas = [], []
    with open(caminho, encoding="utf-8") as arquivo:
        for linha in arquivo.read().splitlines():
            if linha.startswith("#"):
                cabecalho.append(linha)
            else:
                video, relogio, console, texto = linha.split(" | ", 3)
                linhas.append((float(video), float(relogio), re.sub(r" \d+$", "", console), texto))
    return cabecalho, linhas


def test_video_rapido_de_uma_execucao_real(tmp_path):
    """[9 II, 9 III] video.py grava um MP4 H.264 válido; a transcrição tem GET normal e TRY_OTHER."""
    pasta = str(tmp_path)
    resultado = gravar(pasta)
    transcricao = os.path.join(pasta, "video.txt")
    assert resultado.returncode == 0, resultado.stderr
    assert "Traceback" not in resultado.stderr

    # O arquivo lido de volta: um MP4 (caixa ftyp), H.264, 1280x720, com a duração anunciada.
    video = os.path.join(pasta, "video.mp4")
    with open(video, "rb") as arquivo:
        assert arquivo.read(12)[4:8] == b"ftyp"
    leitor = imageio_ffmpeg.read_frames(video)
    meta = next(leitor)
    leitor.close()
    assert meta["codec"].startswith("h264"), meta
    assert tuple(meta["size"]) == (1280, 720), meta
    quadros, segundos = imageio_ffmpeg.count_frames_and_secs(video)
    cabecalho, linhas = ler_transcricao(transcricao)
    anunciado = re.search(r"duração do vídeo: ([\d.]+) s \((\d+) quadros", "\n".join(cabecalho))
    assert anunciado, cabecalho
    assert quadros == int(anunciado.group(2))
    assert abs(segundos - float(anunciado.group(1))) < 0.5
    assert 5 < segundos < 300

    # A transcrição: os cinco consoles, o GET normal e o TRY_OTHER no cliente e no servidor.
    por_console = {}
    for _, _, console, texto in linhas:
        por_console.setdefault(console, []).append(texto)
    for console in CONSOLES:
        assert por_console.get(console), "console %s vazio na transcrição" % console
    cliente_b = por_console["cliente B"]
    assert any(re.fullmatch(r"GET key: nome value: Ana obtido do servidor [\d.]+:\d+, "
                            r"meu timestamp \d+ e do servidor \d+", t) for t in cliente_b)
    assert any(re.fullmatch(r"GET key: nome value: TRY_OTHER_SERVER_OR_LATER obtido do "
                            r"servidor [\d.]+:\d+, meu timestamp \d+ e do servidor \d+", t)
               for t in cliente_b)
    # Só o seguidor lento fica para trás: é ele quem devolve TRY_OTHER_SERVER_OR_LATER.
    assert any(re.fullmatch(r"Cliente [\d.]+:\d+ GET key:nome ts:\d+\. Meu ts é \d+, portanto "
                            r"devolvendo TRY_OTHER_SERVER_OR_LATER", t)
               for t in por_console["seguidor lento"])
    assert any(t.startswith("Encaminhando PUT key:") for t in
               por_console["seguidor"] + por_console["seguidor lento"])
    # Todo corte de espera está na transcrição, com a duração que a marca "+N s" mostra.
    assert all(re.fullmatch(r"\+[1-9]\d* s de espera encurtados", t)
               for t in por_console.get("corte", []))
    # Os tempos no vídeo nunca andam para trás e cabem no vídeo.
    tempos = [video for video, _, _, _ in linhas]
    assert tempos == sorted(tempos) and tempos[-1] <= segundos


    # As figuras do relatório (o que --figuras copia para relatorio/figuras): as últimas linhas
    # dos consoles que importam, em texto, com a linha que prova o passo destacada.
    provas = {"get_normal": r"GET key: nome value: Ana obtido do servidor .*",
              "try_other": r"GET key: nome value: TRY_OTHER_SERVER_OR_LATER obtido do .*"}
    for nome, prova in provas.items():
        with open(os.path.join(pasta, nome + ".json"), encoding="utf-8") as arquivo:
            figura = json.load(arquivo)
        consoles = {re.sub(r" \d+$", "", c["titulo"]): c["linhas"] for c in figura["consoles"]}
        assert "cliente B" in consoles and len(consoles) in (2, 3), consoles.keys()
        destacadas = ["".join(texto for _, texto in linha["pedacos"])
                      for linha in consoles["cliente B"] if linha["destaque"]]
        assert any(re.fullmatch(prova, texto) for texto in destacadas), (nome, destacadas)
