import factory
from django.contrib.auth.models import Group

from accounts.models import Department, User

PASSWORD = "correct-horse-battery-42"


class DepartmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Department
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"dept-{n}")
    name = factory.Sequence(lambda n: f"Department {n}")


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    first_name = "Анна"
    last_name = "Смирнова"
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def role(self, create, extracted, **kwargs):
        if extracted:
            self.groups.add(Group.objects.get(name=extracted))
            if extracted == "Administrator":
                self.is_staff = True
                self.save(update_fields=["is_staff"])

    @factory.post_generation
    def departments(self, create, extracted, **kwargs):
        if extracted:
            self.departments.set(extracted)
        self.save()
