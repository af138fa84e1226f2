"""The account pages (the API's are in ``accounts.api_urls``)."""

from django.urls import path

from accounts import views

urlpatterns = [
    path("register/", views.register, name="register"),
    path("login/", views.PageLoginView.as_view(), name="login"),
    path("logout/", views.logout_view, name="logout"),
]
