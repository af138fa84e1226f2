"""Forms of the account pages."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.forms import UserCreationForm


class RegisterForm(UserCreationForm):
    """Django's own checks (name taken, case-insensitively; password validators; the two
    passwords match) plus an email address. The view creates the user through
    ``accounts.services.user_register``, not ``save()``."""

    email = forms.EmailField(max_length=254, help_text="For notices about your account.")
    invite_code = forms.CharField(
        required=False, max_length=64, label="Invite code",
        help_text="The class code you were given, if any.")

    class Meta(UserCreationForm.Meta):
        fields = ("username", "email")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Django's help is a list of every validator; this says the same in one line.
        self.fields["password1"].help_text = (
            "At least 8 characters, not only digits, not a common password.")
