from django import template

register = template.Library()


@register.simple_tag(takes_context=True)
def study_ai_results(context, study):
    """The AI section's data for the study page (the page has scoped and audited the study)."""
    from diagnostics.selectors import study_ai

    return study_ai(user=context["request"].user, study=study)
