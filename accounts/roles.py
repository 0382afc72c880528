"""The one permission table: which role (a Django group) holds which permission.

Later issues extend ``ROLE_PERMISSIONS``; groups are synchronised from it after every migrate.
"""

ADMINISTRATOR = "Administrator"
RADIOLOGIST = "Radiologist"
CLINICIAN = "Clinician"
REGISTRAR = "Registrar"
RESEARCHER = "Researcher"

ROLES = (ADMINISTRATOR, RADIOLOGIST, CLINICIAN, REGISTRAR, RESEARCHER)

ROLE_PERMISSIONS: dict[str, set[str]] = {
    ADMINISTRATOR: {
        "accounts.view_user",
        "accounts.add_user",
        "accounts.change_user",
        "accounts.view_department",
        "accounts.add_department",
        "accounts.change_department",
        "accounts.view_auditevent",
        "accounts.share_record",
        "accounts.view_emergencyaccess",
        "accounts.review_emergency_access",
        "patients.view_patient",
        "patients.restore_patient",
        "patients.view_identifiertype",
        "patients.add_identifiertype",
        "patients.change_identifiertype",
        "accounts.view_hospitalsettings",
        "accounts.change_hospitalsettings",
    },
    RADIOLOGIST: {
        "accounts.emergency_access",
        "patients.view_patient",
        "patients.view_identifiertype",
    },
    CLINICIAN: {
        "accounts.emergency_access",
        "patients.view_patient",
        "patients.view_identifiertype",
    },
    REGISTRAR: {
        "accounts.emergency_access",
        "patients.view_patient",
        "patients.add_patient",
        "patients.change_patient",
        "patients.delete_patient",
        "patients.view_identifiertype",
    },
    RESEARCHER: set(),
}


def extend(role: str, *perms: str) -> None:
    """Let a later app add its permissions to a role (called from its AppConfig.ready)."""
    ROLE_PERMISSIONS[role].update(perms)


def sync_role_groups() -> None:
    """Create the role groups and set exactly the permissions of the table."""
    from django.contrib.auth.models import Group, Permission

    for role, perms in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        wanted = []
        for perm in sorted(perms):
            app_label, codename = perm.split(".", 1)
            try:
                wanted.append(
                    Permission.objects.get(content_type__app_label=app_label, codename=codename)
                )
            except Permission.DoesNotExist:
                raise LookupError(f"Role {role}: permission {perm} does not exist") from None
        group.permissions.set(wanted)


def markdown_table() -> str:
    """The README's role table: one row per permission, one column per role."""
    perms = sorted(set().union(*ROLE_PERMISSIONS.values()))
    lines = [
        "| permission | " + " | ".join(ROLES) + " |",
        "|---|" + "---|" * len(ROLES),
    ]
    for perm in perms:
        marks = ["✓" if perm in ROLE_PERMISSIONS[role] else "" for role in ROLES]
        lines.append(f"| `{perm}` | " + " | ".join(marks) + " |")
    return "\n".join(lines)
