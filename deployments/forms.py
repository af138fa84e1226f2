"""Forms of the deployment pages."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.files.uploadedfile import UploadedFile


class MultipleFileInput(forms.FileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """Several files from one ``<input type=file multiple>``; cleans to a list."""

    widget = MultipleFileInput

    def clean(self, data: Any, initial: Any = None) -> list[UploadedFile]:
        items = list(data) if isinstance(data, list | tuple) else [data]
        # No file at all is cleaned as one missing file, so "required" applies.
        return [super(MultipleFileField, self).clean(item, initial) for item in items or [None]]


class LaunchForm(forms.Form):
    runtime = forms.CharField(max_length=32)


class UploadForm(forms.Form):
    # Named like the API's field; ``files`` would shadow ``Form.files``.
    file = MultipleFileField(
        allow_empty_file=True,
        error_messages={"required": "Choose at least one file to upload."},
        help_text="Files, or .zip / .tar / .tar.gz archives (they are unpacked).",
    )
    path = forms.CharField(
        required=False, max_length=1000, label="Target folder",
        widget=forms.TextInput(attrs={"placeholder": "e.g. css (optional)"}),
        help_text="Leave empty to put the files at the top of your site.",
    )


class AliasForm(forms.Form):
    alias = forms.CharField(required=False, max_length=253)


class FileDeleteForm(forms.Form):
    path = forms.CharField(max_length=1000)


class ReleaseForm(forms.Form):
    """The no-JS confirmation step: a release without ``confirmed=yes`` shows a page
    asking for it."""

    confirmed = forms.CharField(required=False)

    @property
    def is_confirmed(self) -> bool:
        return self.is_valid() and self.cleaned_data["confirmed"] == "yes"
