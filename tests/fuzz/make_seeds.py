"""Regenerate the fuzz seed corpus (python3 standard library + ffmpeg).

audio/       tiny valid files of every container locosep decodes (0.05 s tones)
checkpoint/  a valid zip .pth (one float32 tensor in an OrderedDict, as torch.save lays it
             out), a legacy-free safetensors file, and the hostile .pth files' shape
config/      a preset TOML, a reference keyword JSON and a fork YAML `model:` section
"""
import json, math, os, struct, subprocess, wave, zipfile

here = os.path.dirname(os.path.abspath(__file__))
corpus = os.path.join(here, "corpus")


def tone_wav(path, rate=44100, seconds=0.05, channels=2):
    n = int(rate * seconds)
    with wave.open(path, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        frames = b"".join(
            struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / rate))) * channels
            for i in range(n)
        )
        w.writeframes(frames)


audio = os.path.join(corpus, "audio")
src = os.path.join(audio, "tone.wav")
tone_wav(src)
for ext, args in [
    ("flac", []),
    ("mp3", ["-c:a", "libmp3lame", "-b:a", "64k"]),
    ("ogg", ["-c:a", "libvorbis"]),
    ("m4a", ["-c:a", "aac", "-b:a", "64k"]),
    ("opus", ["-c:a", "libopus", "-b:a", "32k"]),
    ("webm", ["-c:a", "libopus", "-b:a", "32k"]),
    ("mp4", ["-c:a", "libopus", "-b:a", "32k"]),
]:
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-i", src, *args,
         os.path.join(audio, f"tone.{ext}")],
        check=True,
    )


def binunicode(s):
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


ck = os.path.join(corpus, "checkpoint")
tensor = (b"ctorch._utils\n_rebuild_tensor_v2\n("
          b"(" + binunicode("storage") + b"ctorch\nFloatStorage\n" + binunicode("0")
          + binunicode("cpu") + b"K\x04tQ"
          b"K\x00(K\x02K\x02t(K\x02K\x01t\x89ccollections\nOrderedDict\n)RtR")
pkl = (b"\x80\x02ccollections\nOrderedDict\n)R("
       + binunicode("separator.conv.0.bias") + tensor + b"u.")
with zipfile.ZipFile(os.path.join(ck, "tiny.pth"), "w", zipfile.ZIP_STORED) as z:
    z.writestr("archive/data.pkl", pkl)
    z.writestr("archive/byteorder", b"little")
    z.writestr("archive/data/0", struct.pack("<4f", 1.0, 2.0, 3.0, 4.0))
    z.writestr("archive/version", b"3\n")

header = json.dumps({
    "conv.0.bias": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
    "conv.0.weight": {"dtype": "F32", "shape": [4], "data_offsets": [16, 32]},
    "__metadata__": {"format": "pt"},
}).encode()
header += b" " * (-len(header) % 8)
with open(os.path.join(ck, "tiny.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(header)) + header + struct.pack("<8f", *range(8)))

# Band-split (mixit-mss) layout: the task's plain state dict with the `model.model.` prefix and
# an STFT window buffer to ignore, and the same dict wrapped as a Lightning `.ckpt`.
def entry(key):
    return binunicode(key) + tensor


bs_items = (entry("model.model.band_split_module.band_split_module.0.0.weight")
            + entry("model.stft.0.window"))
for name, pkl in [
    ("mixit_task.pth", b"\x80\x02ccollections\nOrderedDict\n)R(" + bs_items + b"u."),
    ("lightning.ckpt", b"\x80\x02}(" + binunicode("state_dict")
     + b"ccollections\nOrderedDict\n)R(" + bs_items + b"u" + binunicode("epoch") + b"K\x03u."),
]:
    with zipfile.ZipFile(os.path.join(ck, name), "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", pkl)
        z.writestr("archive/byteorder", b"little")
        z.writestr("archive/data/0", struct.pack("<4f", 1.0, 2.0, 3.0, 4.0))
        z.writestr("archive/version", b"3\n")

# Configs of the band-split flavours: MERL keyword JSON and mixit-mss's merged_config.yaml.
fixtures = os.path.join(here, "..", "fixtures", "bslocoformer")
cfg = os.path.join(corpus, "config")
for src, dst in [("bs-mono-mask/config.json", "bs_merl.json"),
                 ("mixit-small/merged_config.yaml", "mixit_merged_config.yaml")]:
    with open(os.path.join(fixtures, src), "rb") as f, open(os.path.join(cfg, dst), "wb") as g:
        g.write(f.read())
