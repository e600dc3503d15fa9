"""The synthetic MURA dataset: procedural radiographs of the upper limb, in MURA-v1.1's layout.

MURA itself may not be redistributed, so the book builds by default on this stand-in, generated
deterministically from a seed, with the ground truth of every image that real MURA lacks.

Modules, from the dataset down to the pixels:

- :mod:`.generator`: the dataset: plans studies and images, writes the MURA-v1.1 tree and the truth
  table, reads the truth back (:func:`image_truth`, :func:`study_truth`), redraws stored images
  (:func:`render_images`) and hashes this package's code (:func:`generator_hash`);
- :mod:`.radiograph`: :func:`draw_radiograph`, one picture composed from the modules below;
- :mod:`.anatomy`: the upper limb in centimetres (bones as tubes, ellipsoids, plates and arcs, soft
  tissue, joints) and the camera that frames it per study type;
- :mod:`.film`: from attenuation to pixels: the film, the collimated field, lead markers, the exposure
  and the detector;
- :mod:`.findings`: fracture, hardware, cast, lesion and degenerative change (:data:`FINDINGS`), and
  how conspicuous they are drawn (:data:`FINDING_STRENGTH`).

Every module of this package goes into :func:`generator_hash`, which is part of a dataset's
specification: change any of them and the data are generated again.
"""

from .findings import FINDING_STRENGTH, FINDINGS
from .generator import (
    FINDING_BOX_COLUMNS,
    FINDING_FRACTION_COLUMNS,
    MARKER_BOX_COLUMNS,
    MURA_IMAGE_COUNTS,
    MURA_PATIENTS,
    MURA_STUDY_COUNTS,
    MURA_VIEWS_PER_STUDY,
    OUTSIDE_IMPORTS,
    REPEAT_SAME_TYPE_SHARE,
    SIDECAR_BYTES,
    SPEC_FILENAME,
    TRUTH_FILENAME,
    SyntheticSpec,
    dataset_spec,
    generate_synthetic_mura,
    generator_hash,
    image_truth,
    plan_images,
    plan_studies,
    render_images,
    render_without_markers,
    study_truth,
)
from .radiograph import draw_radiograph

__all__ = [
    "FINDINGS",
    "FINDING_STRENGTH",
    "FINDING_BOX_COLUMNS",
    "FINDING_FRACTION_COLUMNS",
    "MARKER_BOX_COLUMNS",
    "MURA_IMAGE_COUNTS",
    "MURA_PATIENTS",
    "MURA_STUDY_COUNTS",
    "MURA_VIEWS_PER_STUDY",
    "OUTSIDE_IMPORTS",
    "REPEAT_SAME_TYPE_SHARE",
    "SIDECAR_BYTES",
    "SPEC_FILENAME",
    "TRUTH_FILENAME",
    "SyntheticSpec",
    "dataset_spec",
    "draw_radiograph",
    "generate_synthetic_mura",
    "generator_hash",
    "image_truth",
    "plan_images",
    "plan_studies",
    "render_images",
    "render_without_markers",
    "study_truth",
]
