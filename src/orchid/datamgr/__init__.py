"""Data systems that stage, list and delete files, behind the DataManager Protocol."""
