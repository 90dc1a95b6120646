"""When an effect's first call began, so a saga tells a participant that is slow from one whose
request still waits in a queue (orders.saga.sagas_expire); the unique key leads with the event
id, so the calls owed for one event are found by one index seek."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('eventstore', '0007_transaction_ids'),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name='effect',
            name='eventstore_effect_event_uniq',
        ),
        migrations.AddField(
            model_name='effect',
            name='started_at',
            field=models.DateTimeField(blank=True, help_text='When the first call began (None: not called yet).', null=True),
        ),
        migrations.AddConstraint(
            model_name='effect',
            constraint=models.UniqueConstraint(fields=('event_id', 'subscriber'), name='eventstore_effect_event_uniq'),
        ),
    ]
