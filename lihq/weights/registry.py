"""The weights registry: every checkpoint LIHQ needs, where it comes from and where it lives on disk.

The table is data only (frozen dataclasses). `fetch.py` downloads and verifies, `synth.py` writes
synthetic files in the same layouts, `loaders.py` reads them. Users name entries (`lihq weights fetch
fomm`); an entry may hold several files (`facexlib`, `qvi`, `tortoise`).

Rules for the table
-------------------
- `urls`: direct-download URLs, the official one first where it can be fetched without a browser,
  then mirrors, tried in order. `manual_urls`: official pages that need a browser (Google Drive,
  SharePoint folders, Yandex Disk); they appear in error messages, never in automatic downloads.
- `sha256` / `size` are recorded only where found in a published source (see each entry's
  `provenance`); never guessed. `hash_prefix` is the sha256 prefix an official file name carries
  (torch.hub convention, e.g. `s3fd-619a316812.pth`); `md5` is what upstream code itself checks.
- `nets`: how to build the network(s) the file holds, one `module:callable` per part (FOMM: generator,
  kp_detector); `synth.py` builds them, takes their state dicts' keys, shapes and dtypes, and writes
  them in `layout`. Empty where LIHQ does not build the network (TorToiSe, Bark).
- `manifests`: names of the key/shape tables a conformance vector set ships for the file (relative
  to the set's root, e.g. `fomm/manifests/generator.json`). Only tests read them (to check that our
  networks have the official keys); nothing at run time does.
- `dest`: a relative POSIX path under `LIHQ_WEIGHTS_DIR`.
- `layout`: how the file is organised, one of `LAYOUTS` (the loaders and the synthesizer dispatch on it).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from lihq.config import WeightsConfig
from lihq.errors import InvalidInput, WeightsMissing

# layout id -> what the file holds (documentation; loaders.py and synth.py implement them)
LAYOUTS: dict[str, str] = {
    "fomm_cpk_legacy_pickle": "legacy (non-zip) torch pickle: dict generator / kp_detector / discriminator "
    "state dicts, optimizer_* state dicts, epoch",
    "wav2lip_state_dict_module": "dict state_dict ('module.'-prefixed keys), optimizer, global_step, "
    "global_epoch (or a TorchScript archive)",
    "torch_state_dict": "a plain state dict",
    "torch_state_dict_module": "a plain state dict whose keys carry nn.DataParallel's 'module.' prefix",
    "gfpgan_params_ema": "dict params_ema (EMA generator state dict, BasicSR convention)",
    "realesrgan_params_ema": "dict params_ema (RRDBNet state dict, BasicSR convention)",
    "modnet_dataparallel": "nn.DataParallel(MODNet).state_dict(): 'module.' keys, backbone tensors "
    "aliased under module.lr_branch.backbone",
    "qvi_module": "dict model_state_dict (nn.DataParallel(QVI), 'module.' keys) + training metadata "
    "(Detail, epoch, timestamp, losses)",
    "tortoise_vocoder_model_g": "dict model_g (UnivNet generator state dict)",
    "bark_model_args": "dict model (GPT state dict), model_args, and training metadata",
}


@dataclass(frozen=True)
class WeightFile:
    """One checkpoint file. Contract: `dest` is relative and free of '..'; hashes are lowercase hex."""

    filename: str  # the official file name
    dest: str  # relative POSIX path under LIHQ_WEIGHTS_DIR
    layout: str  # a key of LAYOUTS
    urls: tuple[str, ...] = ()  # direct downloads, official first, then mirrors
    manual_urls: tuple[str, ...] = ()  # official pages needing a browser (Drive, SharePoint, Yandex)
    size: int | None = None  # bytes, where published
    sha256: str | None = None
    hash_prefix: str | None = None  # sha256 prefix carried by the official file name
    md5: str | None = None  # where upstream itself checks md5 (Bark)
    nets: tuple[str, ...] = ()  # `module:callable` building each part's network, for synth.py
    manifests: tuple[str, ...] | None = None  # a vector set's key tables (tests only), see above
    note: str = ""

    @property
    def url(self) -> str | None:
        """The primary direct-download URL (None: the file can only be fetched by hand)."""
        return self.urls[0] if self.urls else None

    @property
    def mirrors(self) -> tuple[str, ...]:
        return self.urls[1:]

    @property
    def manual_only(self) -> bool:
        return not self.urls


@dataclass(frozen=True)
class WeightsEntry:
    """A name users type (`lihq weights fetch NAME`) and the files it stands for."""

    name: str
    model: str  # the network family (fomm, wav2lip, s3fd, gfpgan, ...)
    service: str  # the services/<folder> that loads it
    description: str
    license: str  # short label for tables
    license_url: str
    files: tuple[WeightFile, ...]
    provenance: str
    license_note: str = ""  # what the short label leaves out
    optional: bool = False  # not needed by the default render recipe


_GH = "https://github.com"
_HF = "https://huggingface.co"
_FOMM_MIRROR = f"{_GH}/graphemecluster/first-order-model-demo/releases/download/checkpoints"
_FOMM_MANUAL = (
    "https://drive.google.com/open?id=1PyQJmkdCsAkOYwUyaj_l-l0as-iLDgeH",
    "https://yadi.sk/d/lEw8uRm140L_eQ",
)
_FOMM_MANIFESTS = ("fomm/manifests/generator.json", "fomm/manifests/kp_detector.json")
_W2L_SP = (
    "https://iiitaphyd-my.sharepoint.com/personal/radrabha_m_research_iiit_ac_in/_layouts/15/download.aspx"
)
_W2L_HF = f"{_HF}/camenduru/Wav2Lip/resolve/main/checkpoints"
_GFPGAN_REL = f"{_GH}/TencentARC/GFPGAN/releases/download"
_FACEXLIB_REL = f"{_GH}/xinntao/facexlib/releases/download"
_TORTOISE_HF = f"{_HF}/Manmay/tortoise-tts/resolve/main"
_TORTOISE_V2 = f"{_HF}/jbetker/tortoise-tts-v2/resolve/main/.models"
_BARK_HF = f"{_HF}/suno/bark/resolve/main"


def _fomm_file(filename: str, gdrive_note: str) -> WeightFile:
    return WeightFile(
        filename=filename,
        dest=f"fomm/{filename}",
        layout="fomm_cpk_legacy_pickle",
        urls=(f"{_FOMM_MIRROR}/{filename}",),
        manual_urls=_FOMM_MANUAL,
        nets=("services.fomm.checkpoint:build_generator", "services.fomm.checkpoint:build_kp_detector"),
        manifests=_FOMM_MANIFESTS,
        note=gdrive_note,
    )


def _tortoise_file(filename: str, layout: str = "torch_state_dict", v2_mirror: bool = True) -> WeightFile:
    urls = (f"{_TORTOISE_HF}/{filename}",) + ((f"{_TORTOISE_V2}/{filename}",) if v2_mirror else ())
    return WeightFile(filename=filename, dest=f"tortoise/{filename}", layout=layout, urls=urls)


def _bark_file(filename: str, md5: str) -> WeightFile:
    return WeightFile(
        filename=filename,
        dest=f"bark/{filename}",
        layout="bark_model_args",
        urls=(f"{_BARK_HF}/{filename}",),
        md5=md5,
    )


ENTRIES: tuple[WeightsEntry, ...] = (
    WeightsEntry(
        name="fomm",
        model="fomm",
        service="fomm",
        description="First Order Motion Model, VoxCeleb 256² (generator + keypoint detector)",
        license="MIT",
        license_note="AliaksandrSiarohin/first-order-model LICENSE.md (MIT); weights trained on VoxCeleb",
        license_url=f"{_GH}/AliaksandrSiarohin/first-order-model/blob/master/LICENSE.md",
        files=(
            _fomm_file(
                "vox-cpk.pth.tar",
                "LIHQ's notebook fetched it from Drive file id 1DbjXD2nS3jlyCWoJu2HGcLZZjhLC9a2J (~729 MB).",
            ),
        ),
        provenance="Official links (README @c0274845): Google Drive folder 1PyQJmkdCsAkOYwUyaj_l-l0as-iLDgeH and "
        "Yandex Disk, both browser-only. Direct mirror: graphemecluster/first-order-model-demo release "
        "'checkpoints' (used by ComfyUI-FirstOrderMM). No published sha256 or size.",
    ),
    WeightsEntry(
        name="fomm-adv",
        model="fomm",
        service="fomm",
        description="First Order Motion Model, VoxCeleb 256², adversarially fine-tuned",
        license="MIT",
        license_note="AliaksandrSiarohin/first-order-model LICENSE.md (MIT); weights trained on VoxCeleb",
        license_url=f"{_GH}/AliaksandrSiarohin/first-order-model/blob/master/LICENSE.md",
        files=(_fomm_file("vox-adv-cpk.pth.tar", "Same Google Drive folder as vox-cpk."),),
        provenance="As `fomm`: official Drive/Yandex folders, direct mirror graphemecluster/first-order-model-demo. "
        "No published sha256 or size.",
        optional=True,
    ),
    WeightsEntry(
        name="wav2lip",
        model="wav2lip",
        service="wav2lip",
        description="Wav2Lip generator (more accurate lip sync)",
        license="non-commercial",
        license_note="research/personal use only (Rudrabha/Wav2Lip README); trained on LRS2",
        license_url=f"{_GH}/Rudrabha/Wav2Lip#license-and-citation",
        files=(
            WeightFile(
                filename="wav2lip.pth",
                dest="wav2lip/wav2lip.pth",
                layout="wav2lip_state_dict_module",
                urls=(
                    f"{_W2L_SP}?share=Eb3LEzbfuKlJiR600lQWRxgBIY27JZg80f7V9jtMfbNDaQ",
                    f"{_W2L_HF}/wav2lip.pth",
                ),
                manual_urls=(
                    "https://drive.google.com/drive/folders/153HLrqlBNxzZcHi17PEvP09kkAfzRshM",
                    "https://iiitaphyd-my.sharepoint.com/:u:/g/personal/radrabha_m_research_iiit_ac_in/"
                    "Eb3LEzbfuKlJiR600lQWRxgBIY27JZg80f7V9jtMfbNDaQ?e=TBFBVW",
                ),
                nets=("services.wav2lip.nets.wav2lip:Wav2Lip",),
                manifests=("wav2lip/manifests/wav2lip.json",),
            ),
        ),
        provenance="Official links: SharePoint (README until 2024), now a Google Drive folder (README @5c90fa9b). "
        "Direct mirror: huggingface.co/camenduru/Wav2Lip. No published sha256 for wav2lip.pth.",
    ),
    WeightsEntry(
        name="wav2lip_gan",
        model="wav2lip",
        service="wav2lip",
        description="Wav2Lip generator trained with the visual-quality discriminator (LIHQ's default)",
        license="non-commercial",
        license_note="research/personal use only (Rudrabha/Wav2Lip README); trained on LRS2",
        license_url=f"{_GH}/Rudrabha/Wav2Lip#license-and-citation",
        files=(
            WeightFile(
                filename="wav2lip_gan.pth",
                dest="wav2lip/wav2lip_gan.pth",
                layout="wav2lip_state_dict_module",
                urls=(
                    f"{_W2L_SP}?share=EdjI7bZlgApMqsVoEUUXpLsBxqXbn5z8VTmoxp55YNDcIA",
                    f"{_W2L_HF}/wav2lip_gan.pth",
                ),
                manual_urls=(
                    "https://drive.google.com/file/d/15G3U08c8xsCkOqQxE38Z2XXDnPcOptNk/view",
                    "https://iiitaphyd-my.sharepoint.com/:u:/g/personal/radrabha_m_research_iiit_ac_in/"
                    "EdjI7bZlgApMqsVoEUUXpLsBxqXbn5z8VTmoxp55YNDcIA?e=n9ljGW",
                ),
                size=435801865,
                sha256="ca9ab7b7b812c0e80a6e70a5977c545a1e8a365a6c49d5e533023c034d7ac3d8",
                nets=("services.wav2lip.nets.wav2lip:Wav2Lip",),
                manifests=("wav2lip/manifests/wav2lip.json",),
                note="The sha256/size are those of the original 436 MB file (state dict + Adam state) served by the "
                "SharePoint link and the camenduru HF mirror. The Google Drive file the current README links is "
                "reported at ~146 MB (a re-save); `verify` will flag it as a mismatch although it loads.",
            ),
        ),
        provenance="Official links: SharePoint (README until 2024), now Google Drive file 15G3U08c8xsCkOqQxE38Z2XXDnPcOptNk. "
        "LIHQ's notebook used Drive id 1eAtM-Ck5RMyMMZoQuoQfYZRU5vDDwBpK. sha256/size: the same value is pinned "
        "independently by many public projects (download scripts and experiment logs) for the HF mirror file.",
    ),
    WeightsEntry(
        name="s3fd",
        model="s3fd",
        service="wav2lip",
        description="S3FD face detector used by Wav2Lip's face_detection (face-alignment's sfd)",
        license="BSD-3-Clause",
        license_note="1adrianb/face-alignment",
        license_url=f"{_GH}/1adrianb/face-alignment/blob/master/LICENSE",
        files=(
            WeightFile(
                filename="s3fd-619a316812.pth",
                dest="s3fd/s3fd.pth",
                layout="torch_state_dict",
                urls=(
                    "https://www.adrianbulat.com/downloads/python-fan/s3fd-619a316812.pth",
                    f"{_W2L_HF}/s3fd-619a316812.pth",
                ),
                manual_urls=(
                    "https://iiitaphyd-my.sharepoint.com/:u:/g/personal/prajwal_k_research_iiit_ac_in/"
                    "EZsy6qWuivtDnANIG73iHjIBjMSoojcIV0NULXV-yiuiIg?e=qTasa8",
                ),
                size=89843225,
                sha256="619a31681264d3f7f7fc7a16a42cbbe8b23f31a256f75a366e5a1bcd59b33543",
                hash_prefix="619a316812",
                nets=("services.wav2lip.nets.s3fd:S3FD",),
                manifests=("s3fd/manifests/s3fd.json",),
                note="Wav2Lip expects it renamed to s3fd.pth.",
            ),
        ),
        provenance="URL from Wav2Lip README and face_detection/detection/sfd/sfd_detector.py (models_urls). The file "
        "name carries the sha256 prefix 619a316812 (torch.hub convention); full sha256 and size as pinned by "
        "public download scripts, consistent with that prefix.",
    ),
    WeightsEntry(
        name="gfpgan-1.3",
        model="gfpgan",
        service="gfpgan",
        description="GFPGAN v1.3 (GFPGANv1Clean, 512²): more natural restorations",
        license="Apache-2.0 (+NVIDIA parts)",
        license_note="TencentARC/GFPGAN: Apache-2.0 with third-party exceptions (StyleGAN2 parts under NVIDIA licenses)",
        license_url=f"{_GH}/TencentARC/GFPGAN/blob/master/LICENSE",
        files=(
            WeightFile(
                filename="GFPGANv1.3.pth",
                dest="gfpgan/GFPGANv1.3.pth",
                layout="gfpgan_params_ema",
                urls=(f"{_GFPGAN_REL}/v1.3.0/GFPGANv1.3.pth",),
                sha256="c953a88f2727c85c3d9ae72e2bd4846bbaf59fe6972ad94130e23e7017524a70",
                nets=("services.gfpgan.checkpoint:build_restorer",),
                manifests=("gfpgan/manifests/GFPGANv1.4_params_ema.json",),
                note="v1.3 and v1.4 share the GFPGANv1Clean architecture (GFPGANer builds both with arch='clean'), "
                "so one network describes both files' params_ema.",
            ),
        ),
        provenance="GitHub release TencentARC/GFPGAN v1.3.0 (README; LIHQ's default `-v 1.3`). sha256 pinned "
        "identically by several public projects (stable-diffusion Dockerfiles, download scripts).",
    ),
    WeightsEntry(
        name="gfpgan-1.4",
        model="gfpgan",
        service="gfpgan",
        description="GFPGAN v1.4 (GFPGANv1Clean, 512²): more detail, better identity",
        license="Apache-2.0 (+NVIDIA parts)",
        license_note="TencentARC/GFPGAN: Apache-2.0 with third-party exceptions (StyleGAN2 parts under NVIDIA licenses)",
        license_url=f"{_GH}/TencentARC/GFPGAN/blob/master/LICENSE",
        files=(
            WeightFile(
                filename="GFPGANv1.4.pth",
                dest="gfpgan/GFPGANv1.4.pth",
                layout="gfpgan_params_ema",
                urls=(f"{_GFPGAN_REL}/v1.3.0/GFPGANv1.4.pth", f"{_GFPGAN_REL}/v1.3.4/GFPGANv1.4.pth"),
                size=348632874,
                sha256="e2cd4703ab14f4d01fd1383a8a8b266f9a5833dacee8e6a79d3bf21a1b6be5ad",
                nets=("services.gfpgan.checkpoint:build_restorer",),
                manifests=("gfpgan/manifests/GFPGANv1.4_params_ema.json",),
            ),
        ),
        provenance="GitHub release TencentARC/GFPGAN v1.3.0 (README link; also attached to v1.3.4). sha256 and size "
        "pinned identically by several independent public projects.",
    ),
    WeightsEntry(
        name="facexlib",
        model="facexlib",
        service="gfpgan",
        description="facexlib RetinaFace-R50 face detector + ParseNet face parser (GFPGAN's FaceRestoreHelper)",
        license="MIT",
        license_note="xinntao/facexlib; RetinaFace weights from biubug6/Pytorch_Retinaface (MIT)",
        license_url=f"{_GH}/xinntao/facexlib/blob/master/LICENSE",
        files=(
            WeightFile(
                filename="detection_Resnet50_Final.pth",
                dest="facexlib/detection_Resnet50_Final.pth",
                layout="torch_state_dict_module",
                urls=(f"{_FACEXLIB_REL}/v0.1.0/detection_Resnet50_Final.pth",),
                size=109497761,
                sha256="6d1de9c2944f2ccddca5f5e010ea5ae64a39845a86311af6fdf30841b0a5a16d",
                nets=("services.gfpgan.checkpoint:build_detector",),
                manifests=("gfpgan/manifests/facexlib_detection_Resnet50_Final.json",),
                note="Keys carry nn.DataParallel's 'module.' prefix in the official file (facexlib's "
                "init_detection_model strips it); the manifest lists them without it.",
            ),
            WeightFile(
                filename="parsing_parsenet.pth",
                dest="facexlib/parsing_parsenet.pth",
                layout="torch_state_dict",
                urls=(f"{_FACEXLIB_REL}/v0.2.2/parsing_parsenet.pth",),
                size=85331193,
                sha256="3d558d8d0e42c20224f13cf5a29c79eba2d59913419f945545d8cf7b72920de2",
                nets=("services.gfpgan.checkpoint:build_parser",),
                manifests=("gfpgan/manifests/facexlib_parsing_parsenet.json",),
            ),
        ),
        provenance="GitHub releases xinntao/facexlib v0.1.0 / v0.2.2 (the URLs facexlib's init_*_model download). "
        "sha256 and sizes pinned identically by two independent public projects.",
    ),
    WeightsEntry(
        name="realesrgan-x2plus",
        model="realesrgan",
        service="gfpgan",
        description="Real-ESRGAN x2plus (RRDBNet): GFPGAN's optional background upsampler",
        license="BSD-3-Clause",
        license_note="xinntao/Real-ESRGAN",
        license_url=f"{_GH}/xinntao/Real-ESRGAN/blob/master/LICENSE",
        files=(
            WeightFile(
                filename="RealESRGAN_x2plus.pth",
                dest="realesrgan/RealESRGAN_x2plus.pth",
                layout="realesrgan_params_ema",
                urls=(f"{_GH}/xinntao/Real-ESRGAN/releases/download/v0.2.1/RealESRGAN_x2plus.pth",),
                size=67061725,
                sha256="49fafd45f8fd7aa8d31ab2a22d14d91b536c34494a5cfe31eb5d89c2fa266abb",
                nets=("services.gfpgan.upsampler:build_rrdbnet",),
            ),
        ),
        provenance="GitHub release xinntao/Real-ESRGAN v0.2.1 (GFPGAN inference_gfpgan.py bg_upsampler URL). sha256 "
        "and size pinned identically by many public projects.",
        optional=True,
    ),
    WeightsEntry(
        name="modnet",
        model="modnet",
        service="modnet",
        description="MODNet photographic portrait matting",
        license="Apache-2.0",
        license_note="ZHKKKe/MODNet: code, models and demos",
        license_url=f"{_GH}/ZHKKKe/MODNet/blob/master/LICENSE",
        files=(
            WeightFile(
                filename="modnet_photographic_portrait_matting.ckpt",
                dest="modnet/modnet_photographic_portrait_matting.ckpt",
                layout="modnet_dataparallel",
                manual_urls=(
                    "https://drive.google.com/uc?id=1mcr7ALciuAsHCpLnrtG_eop5-EYhbCmz",
                    "https://drive.google.com/drive/folders/1umYmlCulvIFNaqPjwod1SayFmSRHziyR",
                ),
                nets=("services.modnet.nets:MODNet",),
                manifests=("modnet/manifests/modnet_photographic_portrait_matting.json",),
                note="Google Drive only: Drive interposes a virus-scan page for large files, so it is not fetched "
                "automatically (gdown can do it by hand).",
            ),
        ),
        provenance="Official: pretrained/README.md links Drive folder 1umYmlCulvIFNaqPjwod1SayFmSRHziyR; the file id "
        "1mcr7ALciuAsHCpLnrtG_eop5-EYhbCmz is what LIHQ's notebook and MODNet's colab gdown. No published hash.",
        optional=True,
    ),
    WeightsEntry(
        name="qvi",
        model="qvi",
        service="qvi",
        description="Quadratic Video Interpolation (QVI model incl. PWC-Net flow) + the PWC-Net init checkpoint",
        license="unspecified",
        license_note="no license file in xuxy09/QVI (all rights reserved by default; research code)",
        license_url=f"{_GH}/xuxy09/QVI",
        files=(
            WeightFile(
                filename="model.pt",
                dest="qvi/model.pt",
                layout="qvi_module",
                urls=("https://www.dropbox.com/s/5auirpk1tijxo1v/model.pt?dl=1",),
                nets=("services.qvi.nets:QVI",),
                manifests=("qvi/manifests/qvi_model_state_dict.json",),
            ),
            WeightFile(
                filename="pwc-checkpoint.pt",
                dest="qvi/pwc-checkpoint.pt",
                layout="torch_state_dict",
                urls=("https://www.dropbox.com/s/afsqhlzu0rarpmf/pwc-checkpoint.pt?dl=1",),
                nets=("services.qvi.nets:PWCNet",),
                manifests=("qvi/manifests/pwc_checkpoint.json",),
                note="Only loaded by QVI.__init__ and then overwritten by model.pt's module.flownet.* weights.",
            ),
        ),
        provenance="Official links are Dropbox shares in the README @64bf82f3 (not Google Drive); `?dl=1` turns them "
        "into direct downloads. LIHQ's notebook fetched the same two links. No published hash.",
        optional=True,
    ),
    WeightsEntry(
        name="tortoise",
        model="tortoise",
        service="tts",
        description="TorToiSe TTS: autoregressive, diffusion decoder, CLVP, UnivNet vocoder, random-latent "
        "generators, HiFi-GAN decoder (api_fast)",
        license="Apache-2.0",
        license_note="neonbjb/tortoise-tts",
        license_url=f"{_GH}/neonbjb/tortoise-tts/blob/main/LICENSE",
        files=(
            _tortoise_file("autoregressive.pth"),
            _tortoise_file("diffusion_decoder.pth"),
            _tortoise_file("clvp2.pth"),
            _tortoise_file("vocoder.pth", layout="tortoise_vocoder_model_g"),
            _tortoise_file("rlg_auto.pth"),
            _tortoise_file("rlg_diffuser.pth"),
            _tortoise_file("hifidecoder.pth", v2_mirror=False),
        ),
        provenance="tortoise/api.py @8a2563ec downloads from HF repo Manmay/tortoise-tts (hf_hub_download); the "
        "older MODELS table points at jbetker/tortoise-tts-v2/.models (kept as mirror; it has no hifidecoder). "
        "No published hashes.",
    ),
    WeightsEntry(
        name="bark",
        model="bark",
        service="tts",
        description="Suno Bark (large) text/coarse/fine GPTs: an alternative TTS (EnCodec weights not included)",
        license="MIT",
        license_note="suno-ai/bark",
        license_url=f"{_GH}/suno-ai/bark/blob/main/LICENSE",
        files=(
            _bark_file("text_2.pt", "54afa89d65e318d4f5f80e8e8799026a"),
            _bark_file("coarse_2.pt", "8a98094e5e3a255a5c9c0ab7efe8fd28"),
            _bark_file("fine_2.pt", "59d184ed44e3650774a2f0503a48a97b"),
        ),
        provenance="bark/generation.py REMOTE_MODEL_PATHS (repo suno/bark); md5 checksums as in Bark's earlier "
        "generation.py and Coqui TTS's Bark config.",
        optional=True,
    ),
)

_BY_NAME: dict[str, WeightsEntry] = {e.name: e for e in ENTRIES}


def entry_names() -> list[str]:
    return [e.name for e in ENTRIES]


def get_entry(name: str) -> WeightsEntry:
    """The entry called `name`; InvalidInput listing the known names otherwise."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise InvalidInput(f"unknown weights {name!r}; known: {', '.join(entry_names())}") from None


def get_entries(names: Iterable[str] | None) -> list[WeightsEntry]:
    """Entries for `names` (all entries when None or empty), each name checked."""
    names = list(names or [])
    return [get_entry(n) for n in names] if names else list(ENTRIES)


def entry_of_file(wfile: WeightFile) -> WeightsEntry:
    for entry in ENTRIES:
        if wfile in entry.files:
            return entry
    raise InvalidInput(f"{wfile.filename} is not a registered weights file")


def entry_for_filename(filename: str) -> WeightsEntry | None:
    """The entry owning a file called `filename` (official name or dest basename), for error hints."""
    for entry in ENTRIES:
        for f in entry.files:
            if filename in (f.filename, PurePosixPath(f.dest).name):
                return entry
    return None


def _weights_dir(cfg: WeightsConfig | Path | str) -> Path:
    return cfg.dir if isinstance(cfg, WeightsConfig) else Path(cfg)


def local_path(entry_or_file: WeightsEntry | WeightFile, cfg: WeightsConfig | Path | str) -> Path:
    """Where a file lives under the weights dir. An entry must have exactly one file (else use its files)."""
    if isinstance(entry_or_file, WeightsEntry):
        if len(entry_or_file.files) != 1:
            raise InvalidInput(
                f"weights {entry_or_file.name!r} has {len(entry_or_file.files)} files; ask for one of them"
            )
        entry_or_file = entry_or_file.files[0]
    return _weights_dir(cfg).joinpath(*PurePosixPath(entry_or_file.dest).parts)


def local_paths(entry: WeightsEntry, cfg: WeightsConfig | Path | str) -> list[Path]:
    return [local_path(f, cfg) for f in entry.files]


def require(name: str, cfg: WeightsConfig | Path | str) -> Path | list[Path]:
    """The path (one file) or paths (several) of entry `name`, all present.

    Raises WeightsMissing (FAILED_PRECONDITION) naming the first missing file and the fetch command.
    """
    entry = get_entry(name)
    paths = local_paths(entry, cfg)
    for f, p in zip(entry.files, paths, strict=True):
        if not p.is_file():
            how = f"run `lihq weights fetch {name}`"
            if f.manual_only:
                how += f" (or download {f.manual_urls[0]} by hand to that path)"
            raise WeightsMissing(f"weights {name!r} missing: {p}; {how}", weight=name)
    return paths[0] if len(paths) == 1 else paths
