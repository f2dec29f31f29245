import contextlib

from django.conf import settings
from django.contrib.auth import login
from django.core.cache import cache
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect, render, resolve_url
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from django.views.generic import CreateView
from prometheus_client.exposition import choose_encoder
from redis.exceptions import RedisError

from chat import metrics as chat_metrics
from chat.forms import OpenRoomForm, SignUpForm
from chat.services import messages
from chat.validation import MESSAGE_ID_MAX, NICK_MAX_LENGTH, parse_message_id

ROOM_LIST_CACHE_KEY = "chat:home:room-list"


def home(request):
    form = OpenRoomForm(request.GET if "room" in request.GET else None)
    if form.is_valid():
        return redirect("room", room=form.cleaned_data["room"])
    return render(request, "chat/home.html", {"form": form, "room_list": room_list_html()})


def room_list_html() -> str:
    """The "Recently active" list, rendered. It is the same for every visitor and rendering it is
    most of the home page's cost (a 20-room list: ~3 ms of template work per request), so it is
    cached for CHAT_ROOM_LIST_CACHE_SECONDS; 0 renders it on every request. The cache is only a
    saving: while Redis is unreachable the list is rendered as if it were off."""
    seconds = settings.CHAT_ROOM_LIST_CACHE_SECONDS
    html = None
    if seconds:
        with contextlib.suppress(RedisError):
            html = cache.get(ROOM_LIST_CACHE_KEY)
    if html is None:
        html = render_to_string("chat/room_list.html", {"rooms": messages.active_rooms()})
        if seconds:
            with contextlib.suppress(RedisError):
                cache.set(ROOM_LIST_CACHE_KEY, html, seconds)
    # Rendered by the template engine with autoescaping on, from this app's own template.
    return mark_safe(html)  # noqa: S308


def room(request, room):
    can_chat = request.user.is_authenticated or settings.CHAT_ALLOW_ANONYMOUS
    # Handed to chat.js as JSON data (json_script), never interpolated into script.
    chat_config = {
        "room": room,
        "wsPath": f"/ws/chat/{room}/",
        "apiUrl": reverse("messages_api", args=[room]),
        "username": request.user.username if request.user.is_authenticated else None,
        "canChat": can_chat,
        "maxLength": settings.CHAT_MAX_MESSAGE_LENGTH,
        "nickMaxLength": NICK_MAX_LENGTH,
        "resumeLimit": settings.CHAT_RESUME_LIMIT,
    }
    return render(
        request,
        "chat/room.html",
        {"room": room, "can_chat": can_chat, "chat_config": chat_config},
    )


@never_cache
@require_GET
def messages_api(request, room):
    """MESSAGE objects of a room: the latest CHAT_HISTORY_SIZE, or with ?since=N up to
    CHAT_RESUME_LIMIT of those after id N, oldest first."""
    if not request.user.is_authenticated and not settings.CHAT_ALLOW_ANONYMOUS:
        return JsonResponse({"error": "Log in to read this room."}, status=403)
    since = request.GET.get("since")
    if since is None:
        return JsonResponse(messages.recent_messages(room, settings.CHAT_HISTORY_SIZE), safe=False)
    since_id = parse_message_id(since)
    if since_id is None:
        return JsonResponse(
            {"error": f"since must be a message id (an integer from 0 to {MESSAGE_ID_MAX})."},
            status=400,
        )
    return JsonResponse(
        messages.messages_after(room, since_id, settings.CHAT_RESUME_LIMIT), safe=False
    )


class SignUpView(CreateView):
    form_class = SignUpForm
    template_name = "registration/signup.html"

    def form_valid(self, form):
        user = form.save()
        login(self.request, user, backend="django.contrib.auth.backends.ModelBackend")
        return redirect(self.success_url_for_request())

    def success_url_for_request(self) -> str:
        target = self.request.POST.get("next") or self.request.GET.get("next")
        if target and url_has_allowed_host_and_scheme(
            target, allowed_hosts={self.request.get_host()}, require_https=self.request.is_secure()
        ):
            return target
        return resolve_url(settings.LOGIN_REDIRECT_URL)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["next"] = self.request.POST.get("next") or self.request.GET.get("next", "")
        return context


@never_cache
@require_GET
def metrics(request):
    """The stack's counters and the forwarding nginx's figures, in Prometheus's text format
    (chat.metrics); 404 unless METRICS_ENABLED. nginx serves it to allowed addresses only."""
    if not settings.METRICS_ENABLED:
        raise Http404("metrics are off")
    try:
        registry = chat_metrics.registry_for(request.META.get("REMOTE_ADDR", ""))
    except RedisError:
        return HttpResponse("Redis did not answer\n", status=503, content_type="text/plain")
    # The format the scraper asks for (OpenMetrics or Prometheus text), as the library negotiates.
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    return HttpResponse(encoder(registry), content_type=content_type)
