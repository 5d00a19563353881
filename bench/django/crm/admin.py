"""Django admin configured like the engine's customer screens: the same list columns, filters,
search fields and default ordering; related records (contacts, activities, opportunities) on
the change form as read-only inlines (the engine's related tabs); a salesperson sees their own
customers, those shared with them and the pool, an administrator all of them."""

from django.contrib import admin
from django.db.models import Q
from django.db.models.expressions import RawSQL

from .models import Activity, Contact, CrmUser, Customer, Opportunity

_crm_ids = {}


def crm_user_id(username):
    if username not in _crm_ids:
        _crm_ids[username] = CrmUser.objects.filter(username=username).values_list("id", flat=True).first()
    return _crm_ids[username]


class Scoped(admin.ModelAdmin):
    """Live records only; non-superusers see what they own, what is shared with them, and the pool."""

    pool = False

    def get_queryset(self, request):
        qs = super().get_queryset(request).filter(deleted_at__isnull=True)
        if request.user.is_superuser:
            return qs
        me = crm_user_id(request.user.username)
        shared = RawSQL("select record_id from crm_share where entity = %s and user_id = %s",
                        (self.model._meta.db_table, me))
        scope = Q(owner_id=me) | Q(id__in=shared)
        if self.pool:
            scope |= Q(in_pool=True)
        return qs.filter(scope)


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).filter(deleted_at__isnull=True).select_related("owner")


class ContactInline(ReadOnlyInline):
    model = Contact
    fields = readonly_fields = ("name", "title", "decision_role", "mobile", "email")


class ActivityInline(ReadOnlyInline):
    model = Activity
    fields = readonly_fields = ("subject", "activity_type", "planned_start", "status", "owner")


class OpportunityInline(ReadOnlyInline):
    model = Opportunity
    fields = readonly_fields = ("name", "amount", "stage", "expected_close_date", "owner")


@admin.register(Customer)
class CustomerAdmin(Scoped):
    pool = True
    list_display = ("code", "name", "customer_type", "industry", "value_grade", "maturity", "city", "phone",
                    "last_follow_up_at", "next_follow_up_at", "owner")
    list_display_links = ("code", "name")
    list_filter = ("customer_type", "category", "source", "industry", "province", "maturity", "status", "value_grade",
                   "hot", "owner", "in_pool", "next_follow_up_at", "created_at")
    search_fields = ("name", "mnemonic", "code", "phone")
    ordering = ("-updated_at",)
    list_select_related = ("owner",)
    list_per_page = 50
    show_full_result_count = False  # one count per page, not two
    raw_id_fields = ("parent",)
    exclude = ("created_by", "updated_by", "version", "deleted_at", "created_at", "updated_at")
    inlines = (ContactInline, ActivityInline, OpportunityInline)


@admin.register(Contact)
class ContactAdmin(Scoped):
    list_display = ("name", "customer", "title", "decision_role", "mobile", "email", "owner")
    search_fields = ("name", "mobile", "email")
    raw_id_fields = ("customer",)
    list_select_related = ("customer", "owner")
