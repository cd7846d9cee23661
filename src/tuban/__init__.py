"""tuban (图斑): satellite supervision of land disturbance by construction projects.

Keep this module light: importing ``tuban`` must not import GDAL, numpy, SQLAlchemy
or FastAPI. Import the subpackage you need.
"""

__version__ = "0.1.0"
