"""Errors of the Back-Office import jobs."""

from __future__ import annotations

from crm.errors import InvalidRequest, NotFound


class ImportJobNotFound(NotFound):
    code = "IMPORT_JOB_NOT_FOUND"
    message = "No such import job."


class ImportFileInvalid(InvalidRequest):
    code = "IMPORT_FILE_INVALID"
    message = "The file cannot be imported."


class ImportOptionsInvalid(InvalidRequest):
    code = "IMPORT_OPTIONS_INVALID"
    message = "The import options are not valid."
