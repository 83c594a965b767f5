"""Synthetic speech with exact phoneme timings from libespeak-ng (ctypes, no subprocess).

libespeak-ng reports a *phoneme event* for every phone it speaks, carrying the phone's
position in the output audio. That gives free ground-truth timing for training the
audio-to-expression model. The library comes from the PyPI package ``espeakng-loader``
(or a system ``libespeak-ng.so.1``).

libespeak-ng keeps global state, so one process holds one engine; :func:`synthesize` takes a
lock and is safe to call from threads (but not in parallel). Use processes for parallelism.
"""

import ctypes
import logging
import os
import threading
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

import numpy as np

logger = logging.getLogger(__name__)

# espeak_AUDIO_OUTPUT / init options / event types / parameters (speak_lib.h).
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INIT_PHONEME_EVENTS = 0x0001
_INIT_DONT_EXIT = 0x8000
_EVENT_LIST_TERMINATED = 0
_EVENT_WORD = 1
_EVENT_PHONEME = 7
_PARAM_RATE = 1
_PARAM_VOLUME = 2
_PARAM_PITCH = 3
_PARAM_RANGE = 4
_PARAM_WORDGAP = 7
_CHARS_UTF8 = 1
_POS_CHARACTER = 1


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p),
                ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),   # milliseconds from the start of the Synth call
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                             ctypes.POINTER(_Event))

#: English espeak voices (language part); combine with a variant as ``"en-us+f3"``.
ENGLISH_LANGUAGES: Tuple[str, ...] = (
    "en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc",
    "en-gb-x-gbclan", "en-gb-x-gbcwmd",
)


@dataclass
class Phone:
    """One spoken phone: espeak mnemonic and its time span in the audio (seconds)."""

    name: str
    start: float
    end: float


@dataclass
class Utterance:
    """Synthesised speech: float32 mono samples in [-1, 1] and the phone timeline."""

    audio: np.ndarray
    sample_rate: int
    phones: List[Phone] = field(default_factory=list)
    words: List[float] = field(default_factory=list)  # word onset times, seconds
    text: str = ""
    voice: str = ""


class _Engine:
    """The process-wide libespeak-ng instance."""

    def __init__(self) -> None:
        self.lib = _load_library()
        data = _data_path()
        rate = self.lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 200,
                                          data.encode() if data else None,
                                          _INIT_PHONEME_EVENTS | _INIT_DONT_EXIT)
        if rate <= 0:
            raise RuntimeError(f"espeak_Initialize failed (data path {data!r})")
        self.sample_rate = int(rate)
        self.lock = threading.Lock()
        self._chunks: List[np.ndarray] = []
        self._events: List[Tuple[int, str, int]] = []
        self._callback = _CALLBACK(self._on_synth)  # keep a reference: C holds the pointer
        self.lib.espeak_SetSynthCallback(self._callback)
        self.lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self.lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint,
                                          ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
                                          ctypes.c_void_p, ctypes.c_void_p]

    def _on_synth(self, wav, numsamples, events) -> int:
        if numsamples > 0 and wav:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(numsamples,)).copy())
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            ev = events[i]
            if ev.type == _EVENT_PHONEME:
                raw = bytes(ev.id.string).split(b"\0", 1)[0]
                self._events.append((ev.type, raw.decode("utf-8", "replace"), ev.audio_position))
            elif ev.type == _EVENT_WORD:
                self._events.append((ev.type, "", ev.audio_position))
            i += 1
        return 0

    def synth(self, text: str, voice: str, rate: int, pitch: int, pitch_range: int,
              volume: int, word_gap: int) -> Utterance:
        with self.lock:
            if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise ValueError(f"espeak-ng has no voice {voice!r}")
            for param, value in ((_PARAM_RATE, rate), (_PARAM_PITCH, pitch),
                                 (_PARAM_RANGE, pitch_range), (_PARAM_VOLUME, volume),
                                 (_PARAM_WORDGAP, word_gap)):
                self.lib.espeak_SetParameter(param, int(value), 0)
            self._chunks, self._events = [], []
            data = text.encode("utf-8") + b"\0"
            err = self.lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8,
                                        None, None)
            if err != 0:
                raise RuntimeError(f"espeak_Synth failed with code {err}")
            self.lib.espeak_Synchronize()
            pcm = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
            events = list(self._events)
        audio = pcm.astype(np.float32) / 32768.0
        return Utterance(audio=audio, sample_rate=self.sample_rate,
                         phones=_events_to_phones(events, len(audio) / self.sample_rate),
                         words=[ms / 1000.0 for t, _, ms in events if t == _EVENT_WORD],
                         text=text, voice=voice)


def _events_to_phones(events: Sequence[Tuple[int, str, int]], duration: float) -> List[Phone]:
    """Turn phoneme onset events (ms) into phones with start/end times (s)."""
    onsets = [(name, ms / 1000.0) for t, name, ms in events if t == _EVENT_PHONEME]
    phones: List[Phone] = []
    for i, (name, start) in enumerate(onsets):
        end = onsets[i + 1][1] if i + 1 < len(onsets) else duration
        if end > start and name:
            phones.append(Phone(name=name, start=start, end=min(end, duration)))
    return phones


def _data_path() -> Optional[str]:
    try:
        import espeakng_loader
        return espeakng_loader.get_data_path()
    except ImportError:
        return None


def _load_library() -> ctypes.CDLL:
    candidates = []
    try:
        import espeakng_loader
        candidates.append(espeakng_loader.get_library_path())
    except ImportError:
        pass
    candidates += ["libespeak-ng.so.1", "libespeak-ng.so"]
    for path in candidates:
        try:
            return ctypes.CDLL(path)
        except OSError:
            continue
    raise RuntimeError("libespeak-ng not found: pip install espeakng-loader "
                       "(or apt install libespeak-ng1)")


_ENGINE: Optional[_Engine] = None
_ENGINE_PID = -1


def _engine() -> _Engine:
    global _ENGINE, _ENGINE_PID
    if _ENGINE is None or _ENGINE_PID != os.getpid():
        _ENGINE = _Engine()
        _ENGINE_PID = os.getpid()
    return _ENGINE


def synthesize(text: str, voice: str = "en-us", rate: int = 170, pitch: int = 50,
               pitch_range: int = 50, volume: int = 100, word_gap: int = 0) -> Utterance:
    """Speak ``text`` with libespeak-ng and return the audio and phone timeline.

    Args:
        text: UTF-8 text; punctuation gives pauses.
        voice: espeak voice name, optionally with a variant (``"en-us+f3"``).
        rate: words per minute (80..450).
        pitch: base pitch 0..100; pitch_range: intonation range 0..100.
        volume: amplitude 0..200 (100 = normal).
        word_gap: extra pause between words in units of 10 ms.

    Returns:
        :class:`Utterance` with ``audio[S]`` float32 at ``sample_rate`` (22050 Hz for the
        bundled voices) and ``phones`` (espeak mnemonics, e.g. ``p``, ``aI``, ``_:``).
    """
    if not text or not text.strip():
        raise ValueError("synthesize: empty text")
    return _engine().synth(text, voice, rate, pitch, pitch_range, volume, word_gap)


def sample_rate() -> int:
    """Return the output sample rate of libespeak-ng in Hz."""
    return _engine().sample_rate


def list_variants() -> List[str]:
    """Return the voice variant names shipped with espeak-ng (``m1``, ``f3``, ...)."""
    data = _data_path()
    if not data:
        return []
    path = os.path.join(data, "voices", "!v")
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


#: A small English word list (common words, every viseme class, many /p b m f v w/).
WORDS: Tuple[str, ...] = tuple("""
a about above across after again against all almost alone along already also always am
among an and animal another answer any anything apple are area arm around as ask at away
baby back bad bag ball bank base basket be bear beautiful because bed been before began
begin behind being believe bell below best better between big bird birthday black blue boat
body book both bottle bottom box boy bread break breakfast bright bring brother brown build
busy but butter buy by cake call came can cap car care carry cat catch chair change cheap
cheese child choose city class clean clear close cloud coffee cold come common cook cool
corner could country cover cup cut dark day deep did different dinner do doctor does dog
done door down draw dream dress drink drive during each early earth easy eat egg eight
either empty end enough even evening ever every example eye face fact fall family far farm
fast father favourite feel feet few field fill find fine finger finish fire first fish five
floor flower fly follow food foot for forest forget form four free friend from front fruit
full fun funny garden gave get girl give glass go gold good got great green group grow had
half hand happen happy hard has hat have he head hear heart heavy hello help her here high
him his hold home hope horse hot hour house how hundred hungry I idea if important in inside
into is it its job join juice jump just keep key kind king kitchen knew know lamp land large
last late laugh learn leave left leg less let letter light like line lion listen little
live long look lose lot loud love low machine made make man many map market may maybe me
mean measure meet member men met middle might milk mind minute mirror miss moment money
monkey month moon more morning most mother mountain mouth move movie much music must my
name near need never new next nice night nine no noise north nose not nothing now number
of off office often oh old on once one only open or orange other our out over own page
paint paper parent park part party pass past pay pen people pepper perhaps person phone
piano pick picture piece pink place plan plant play please pocket point poor possible
power present pretty probably problem pull purple push put queen question quick quiet quite
rabbit rain ran reach read ready real red remember rest rich ride right river road robot
rock room round rule run said same saw say school sea seat second see seem sell send seven
several shall she ship shoe shop short should show side simple since sing sister sit six
size sleep slow small smile snow so some something sometimes song soon sorry sound south
space speak special spring stand star start stay step still stone stop story street strong
study such summer sun supper sure surprise sweet swim table take talk tall tea teacher tell
ten than thank that the their them then there these they thing think this those though
thought three through time to today together told tomorrow too took top toward town toy tree
true try turn twelve two umbrella under until up upon us use usual very view village
visit voice vote wait walk wall want warm was wash watch water wave way we wear weather week
welcome well went were west what wheel when where which while white who whole why wide will
wind window winter wish with without woman wonder wood word work world would write wrong yard
year yellow yes yesterday yet you young your zoo
""".split())


def random_sentence(rng: np.random.Generator, min_words: int = 3, max_words: int = 14) -> str:
    """Return a random sentence (words from :data:`WORDS`, commas and end punctuation)."""
    n = int(rng.integers(min_words, max_words + 1))
    words = [WORDS[int(i)] for i in rng.integers(0, len(WORDS), n)]
    out = []
    for i, w in enumerate(words):
        out.append(w.capitalize() if i == 0 else w)
        if 0 < i < n - 1 and rng.random() < 0.08:
            out[-1] += ","
    end = rng.choice([".", ".", ".", "?", "!"])
    return " ".join(out) + str(end)


# ---------------------------------------------------------------------------- other engines
# Every offline English synthesiser that PyPI or Debian (main) gives, as *families*:
#   espeak   formant synthesis (libespeak-ng above; phone times from its events)
#   flite    CMU Flite 2.2 (Debian ``flite``): clustergen voices awb, rms, slt and diphone
#            kal/kal16; phone times from a pocketsphinx forced alignment
#   festival Festival 2.5 (Debian ``festival`` + ``festvox-kallpc16k``, ``festvox-kdlpc16k``,
#            ``festvox-us-slt-hts``): diphone and HTS voices; phone times from Festival's own
#            Segment relation
#   hibari   ``hibari-tts`` (PyPI, bundled neural voice "heart"); pocketsphinx alignment
# mbrola and pico2wave are not in Debian main and piper voices only come from a model hub,
# so they are absent. Nothing here is needed at run time: only `gemo train/eval a2e` use it.

#: ARPAbet (pocketsphinx / CMU lexicon / Festival radio phoneset) -> espeak mnemonic.
ARPABET_TO_ESPEAK = {
    "P": "p", "B": "b", "M": "m", "F": "f", "V": "v", "TH": "T", "DH": "D", "T": "t",
    "D": "d", "N": "n", "L": "l", "S": "s", "Z": "z", "SH": "S", "ZH": "Z", "CH": "tS",
    "JH": "dZ", "K": "k", "G": "g", "NG": "N", "HH": "h", "R": "r", "W": "w", "Y": "j",
    "AA": "A:", "AE": "a", "AH": "V", "AO": "O:", "AW": "aU", "AY": "aI", "EH": "E",
    "ER": "3:", "EY": "eI", "IH": "I", "IY": "i:", "OW": "oU", "OY": "OI", "UH": "U",
    "UW": "u:", "SIL": "_", "PAU": "_", "AX": "@", "H#": "_", "BRTH": "_",
}

#: Flite voices per use. kal/kal16 share their speaker (and diphones) with Festival's
#: kal_diphone, so they are not trained on while Festival is the held-out family.
FLITE_VOICES: Tuple[str, ...] = ("awb", "rms", "slt", "kal", "kal16")
FESTIVAL_VOICES: Tuple[str, ...] = ("kal_diphone", "ked_diphone", "cmu_us_slt_arctic_hts")


def arpabet_to_espeak(name: str) -> str:
    """Map an ARPAbet phone (any case, optional stress digit) to an espeak mnemonic."""
    return ARPABET_TO_ESPEAK.get(name.upper().rstrip("012"), "_")


def flite_available() -> bool:
    """Return True when the ``flite`` program is installed."""
    import shutil
    return shutil.which("flite") is not None


def festival_available() -> bool:
    """Return True when ``festival`` and at least one English voice are installed."""
    import shutil
    return shutil.which("festival") is not None and bool(festival_voices())


def festival_voices() -> List[str]:
    """Return the installed Festival voices of :data:`FESTIVAL_VOICES`."""
    root = "/usr/share/festival/voices"
    found = []
    for v in FESTIVAL_VOICES:
        if any(os.path.isdir(os.path.join(root, lang, v)) for lang in ("english", "us")):
            found.append(v)
    return found


def _read_wav(path: str) -> Tuple[np.ndarray, int]:
    import soundfile as sf
    audio, rate = sf.read(path, dtype="float32", always_2d=False)
    if audio.ndim > 1:
        audio = audio.mean(axis=1)
    return audio.astype(np.float32), int(rate)


def flite_synth(text: str, voice: str = "slt", stretch: float = 1.0) -> Tuple[np.ndarray, int]:
    """Speak ``text`` with the Flite program; return (float32 audio, rate).

    ``stretch`` scales phone durations (> 1 slower). Raises RuntimeError without flite.
    """
    import subprocess
    import tempfile
    if not flite_available():
        raise RuntimeError("flite is not installed (apt install flite)")
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "f.wav")
        subprocess.run(["flite", "-voice", voice, "--setf", f"duration_stretch={stretch:.3f}",
                        "-t", text, "-o", out], check=True, capture_output=True, timeout=60)
        return _read_wav(out)


def _scheme_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def festival_synth(texts: Sequence[str], voice: str, stretch: float = 1.0
                   ) -> List[Utterance]:
    """Speak each text with Festival in one process; phones from its Segment relation.

    Returns one :class:`Utterance` per text (phones as espeak mnemonics, seconds).
    """
    import subprocess
    import tempfile
    if not festival_available():
        raise RuntimeError("festival is not installed (apt install festival festvox-kallpc16k)")
    if voice not in FESTIVAL_VOICES:
        raise ValueError(f"unknown festival voice {voice!r}")
    out: List[Utterance] = []
    with tempfile.TemporaryDirectory() as tmp:
        lines = [f"(voice_{voice})", f"(Parameter.set 'Duration_Stretch {stretch:.3f})"]
        for i, text in enumerate(texts):
            wav = os.path.join(tmp, f"{i}.wav")
            lines += [f"(set! u (utt.synth (Utterance Text {_scheme_string(text)})))",
                      f'(utt.save.wave u "{wav}" \'riff)',
                      f'(format t "@@ {i}\\n")',
                      "(mapcar (lambda (s) (format t \"%s %f\\n\" (item.name s) "
                      "(item.feat s \"end\"))) (utt.relation.items u 'Segment))"]
        script = os.path.join(tmp, "run.scm")
        with open(script, "w") as f:
            f.write("\n".join(lines) + "\n")
        res = subprocess.run(["festival", "-b", script], check=True, capture_output=True,
                             text=True, timeout=600)
        segs: dict = {}
        cur = -1
        for line in res.stdout.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == "@@":
                cur = int(parts[1])
                segs[cur] = []
            elif len(parts) == 2 and cur >= 0:
                segs[cur].append((parts[0], float(parts[1])))
        for i, text in enumerate(texts):
            audio, rate = _read_wav(os.path.join(tmp, f"{i}.wav"))
            phones, start = [], 0.0
            for name, end in segs.get(i, []):
                if end > start:
                    phones.append(Phone(arpabet_to_espeak(name), start, end))
                start = end
            out.append(Utterance(audio=audio, sample_rate=rate, phones=phones, text=text,
                                 voice=f"festival:{voice}"))
    return out


def hibari_synth(text: str, speed: float = 1.0, seed: int = 0) -> Tuple[np.ndarray, int]:
    """Speak ``text`` with hibari-tts (bundled voice "heart"); return (audio, 24000)."""
    try:
        from hibari import SAMPLE_RATE, Hibari
    except ImportError as exc:
        raise RuntimeError(f"hibari-tts not installed ({exc})") from exc
    global _HIBARI
    if _HIBARI is None:
        _HIBARI = Hibari()
    return np.asarray(_HIBARI(text, speed=speed, seed=seed), np.float32), int(SAMPLE_RATE)


_HIBARI = None


_DECODER = None


def align(audio16k: np.ndarray, text: str) -> List[Tuple[str, float, float]]:
    """Force-align ``text`` to 16 kHz float audio with pocketsphinx; return espeak phones.

    Raises RuntimeError when the words are not in the dictionary or alignment fails.
    """
    from pocketsphinx import Decoder

    words = "".join(ch.lower() if ch.isalpha() or ch in " '" else " " for ch in text).split()
    if not words:
        raise RuntimeError("no words to align")
    global _DECODER
    if _DECODER is None or _DECODER[0] != os.getpid():
        _DECODER = (os.getpid(), Decoder(samprate=16000, loglevel="FATAL"))
    dec = _DECODER[1]
    missing = [w for w in words if dec.lookup_word(w) is None]
    if missing:
        raise RuntimeError(f"words not in the pocketsphinx dictionary: {missing}")
    pcm = (np.clip(audio16k, -1, 1) * 32767).astype(np.int16).tobytes()
    try:
        dec.set_align_text(" ".join(words))
        for second_pass in (False, True):
            if second_pass:
                dec.set_alignment()
            dec.start_utt()
            dec.process_raw(pcm, full_utt=True)
            dec.end_utt()
        al = dec.get_alignment()
    except RuntimeError as exc:  # pocketsphinx raises on a failed search
        _DECODER = None          # its state is unknown now: start afresh next time
        raise RuntimeError(f"pocketsphinx alignment failed: {exc}") from exc
    if al is None:
        _DECODER = None
        raise RuntimeError("pocketsphinx produced no alignment")
    phones = []
    for word in al:
        for ph in word:
            phones.append((arpabet_to_espeak(ph.name), ph.start / 100.0,
                           (ph.start + ph.duration) / 100.0))
    return phones
