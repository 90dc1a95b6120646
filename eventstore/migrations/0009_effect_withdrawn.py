"""A call the event that asked for it no longer wants is withdrawn, not parked: a status that
no longer fits 8 characters, when and why it was withdrawn, and no due time once nothing is left
to do (a withdrawn call already attempted stays due until it is reconciled)."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('eventstore', '0008_effect_started_at'),
    ]

    operations = [
        migrations.AddField(
            model_name='effect',
            name='withdrawn_at',
            field=models.DateTimeField(blank=True, help_text='When the call was withdrawn (None: it was not).', null=True),
        ),
        migrations.AddField(
            model_name='effect',
            name='withdrawn_reason',
            field=models.TextField(blank=True, db_default='', help_text='Which event withdrew the call, and why.'),
        ),
        migrations.AlterField(
            model_name='effect',
            name='attempts',
            field=models.PositiveIntegerField(default=0, help_text='Calls made so far (for a withdrawn call, and lookups).'),
        ),
        migrations.AlterField(
            model_name='effect',
            name='due_at',
            field=models.DateTimeField(blank=True, help_text="Not called again before this time (a retry's backoff, or a running call's lease); a withdrawn call is reconciled then (None: nothing is left to do).", null=True),
        ),
        migrations.AlterField(
            model_name='effect',
            name='status',
            field=models.CharField(choices=[('pending', 'Pending'), ('done', 'Done'), ('parked', 'Parked'), ('withdrawn', 'Withdrawn')], default='pending', max_length=16),
        ),
    ]
