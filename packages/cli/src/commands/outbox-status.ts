import type { Command } from 'commander';
import { addDatabaseOptions, type CliIo, type DatabaseFlags, openAdmin, withPool } from '../io';
import { formatAge, formatTable, formatTime, jsonReady } from '../table';

/** `onceflow outbox status`: backlog per topic and lane, oldest age, parked events, lanes and their owners. */
export function outboxStatusCommand(outbox: Command, io: CliIo): void {
  addDatabaseOptions(
    outbox
      .command('status')
      .description(
        'print the backlog per topic and per lane, the oldest waiting event, parked events, lanes and owners',
      ),
  )
    .option('--all-lanes', 'list every lane, also idle ones without owner')
    .option('--json', 'print one JSON object')
    .action(async (options: DatabaseFlags & { allLanes?: boolean; json?: boolean }) => {
      await withPool(options, io, 1, async (pool) => {
        const status = await (await openAdmin(pool, options.schema)).outboxStatus();
        if (options.json) {
          io.out(JSON.stringify(jsonReady({ schema: options.schema, ...status })));
          return;
        }
        io.out(
          `schema ${options.schema}: backlog ${status.backlog}, oldest ${formatAge(status.oldestAgeMs)}, parked ${status.parked}, live relays ${status.liveRelays}, owned lanes ${status.ownedLanes}/${status.lanes.length}`,
        );
        io.out('');
        for (const line of formatTable(
          ['TOPIC', 'BACKLOG', 'OLDEST', 'PARKED'],
          status.topics.map((topic) => [
            topic.topic,
            topic.backlog,
            formatAge(topic.oldestAgeMs),
            topic.parked,
          ]),
        ))
          io.out(line);
        io.out('');
        const lanes = status.lanes.filter(
          (lane) => options.allLanes || lane.backlog > 0 || lane.owner !== null,
        );
        for (const line of formatTable(
          ['LANE', 'BACKLOG', 'OLDEST', 'OWNER', 'LEASE UNTIL', 'EPOCH'],
          lanes.map((lane) => [
            lane.lane,
            lane.backlog,
            formatAge(lane.oldestAgeMs),
            lane.owner,
            formatTime(lane.leaseExpiresAt),
            lane.epoch,
          ]),
        ))
          io.out(line);
      });
    });
}
