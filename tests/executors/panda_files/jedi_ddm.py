"""JEDI's data management plugin in the tests (runs in .venv-panda): no Rucio here.

Orchid's tasks have pseudo-inputs only (``noInput`` with ``pfnList``), so the only DDM
calls JEDI makes are on the log and output datasets; they all succeed.
"""

from pandajedi.jediddm.GenDDMClient import GenDDMClient


class NullDDMClient(GenDDMClient):
    def freezeDataset(self, datasetName, ignoreUnknown=False):
        return self.SC_SUCCEEDED, True

    def registerNewDataset(self, datasetName, *args, **kwargs):
        return self.SC_SUCCEEDED, True

    def registerDatasetLocation(self, datasetName, *args, **kwargs):
        return self.SC_SUCCEEDED, True

    def getDatasetMetaData(self, datasetName, ignore_missing=False):
        return self.SC_SUCCEEDED, {"state": "closed"}
