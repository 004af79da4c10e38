"""Every architecture of the zoo; importing a model package registers it and its variants."""

from . import swin  # noqa: F401
from . import s2aformer  # noqa: F401
from . import cvt  # noqa: F401
from . import crossvit  # noqa: F401
from . import vit  # noqa: F401
from . import ppma  # noqa: F401
from . import mae  # noqa: F401
from . import hyena_nd  # noqa: F401
from . import hpm  # noqa: F401
from . import gmml  # noqa: F401
from . import maskalign  # noqa: F401
from . import mto  # noqa: F401
from . import hybrid_distill  # noqa: F401
from . import gmm_vit  # noqa: F401
from . import sparsifiner  # noqa: F401
from . import lookupvit  # noqa: F401
from . import path_ensemble_vit  # noqa: F401
