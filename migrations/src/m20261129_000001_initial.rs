//! Users, chats, members with their watermarks, and messages.
//!
//! Ids are UUIDv7 strings; timestamps are microseconds since the Unix epoch in
//! a BIGINT, which orders and compares the same way on both backends.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .if_not_exists()
                    .col(string_len(Users::Id, 36).primary_key())
                    .col(string_len(Users::Username, 32))
                    .col(string_len(Users::UsernameLower, 32))
                    .col(string_len(Users::Email, 254))
                    .col(string(Users::PasswordHash))
                    .col(big_integer(Users::CreatedAt))
                    .to_owned(),
            )
            .await?;
        // Case-insensitive uniqueness lives in the lower-cased columns.
        manager
            .create_index(
                Index::create()
                    .name("users_username_lower_key")
                    .table(Users::Table)
                    .col(Users::UsernameLower)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("users_email_key")
                    .table(Users::Table)
                    .col(Users::Email)
                    .unique()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Chats::Table)
                    .if_not_exists()
                    .col(string_len(Chats::Id, 36).primary_key())
                    .col(string_len(Chats::Name, 200))
                    .col(boolean(Chats::IsGroup))
                    // "<smaller user id>:<larger user id>" for direct chats, so
                    // the pair can only ever have one.
                    .col(string_len_null(Chats::DirectKey, 80))
                    .col(string_len(Chats::CreatedBy, 36))
                    .col(big_integer(Chats::CreatedAt))
                    // Highest seq handed out; bumped in the send transaction.
                    .col(big_integer(Chats::LastSeq).default(0))
                    // Time of the last message (or creation): ListChats order.
                    .col(big_integer(Chats::LastActivityAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Chats::Table, Chats::CreatedBy)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("chats_direct_key_key")
                    .table(Chats::Table)
                    .col(Chats::DirectKey)
                    .unique()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ChatMembers::Table)
                    .if_not_exists()
                    .col(string_len(ChatMembers::ChatId, 36))
                    .col(string_len(ChatMembers::UserId, 36))
                    .col(big_integer(ChatMembers::JoinedAt))
                    .col(big_integer(ChatMembers::DeliveredSeq).default(0))
                    .col(big_integer(ChatMembers::ReadSeq).default(0))
                    .primary_key(
                        Index::create()
                            .col(ChatMembers::ChatId)
                            .col(ChatMembers::UserId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(ChatMembers::Table, ChatMembers::ChatId)
                            .to(Chats::Table, Chats::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(ChatMembers::Table, ChatMembers::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // "Which chats is this user in" (ListChats, membership checks by user).
        manager
            .create_index(
                Index::create()
                    .name("chat_members_user_id_idx")
                    .table(ChatMembers::Table)
                    .col(ChatMembers::UserId)
                    .col(ChatMembers::ChatId)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Messages::Table)
                    .if_not_exists()
                    .col(string_len(Messages::Id, 36).primary_key())
                    .col(string_len(Messages::ChatId, 36))
                    .col(big_integer(Messages::Seq))
                    .col(string_len(Messages::SenderId, 36))
                    .col(string_len_null(Messages::IdempotencyKey, 128))
                    .col(text(Messages::Content))
                    .col(big_integer(Messages::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Messages::Table, Messages::ChatId)
                            .to(Chats::Table, Chats::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Messages::Table, Messages::SenderId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // Paging, replay and gap fill all read a chat's messages by seq; the
        // unique index also makes a duplicated seq impossible.
        manager
            .create_index(
                Index::create()
                    .name("messages_chat_id_seq_key")
                    .table(Messages::Table)
                    .col(Messages::ChatId)
                    .col(Messages::Seq)
                    .unique()
                    .to_owned(),
            )
            .await?;
        // The truth for idempotency: one message per (sender, key). NULL keys
        // (sends without a key) are distinct on both backends.
        manager
            .create_index(
                Index::create()
                    .name("messages_sender_id_idempotency_key_key")
                    .table(Messages::Table)
                    .col(Messages::SenderId)
                    .col(Messages::IdempotencyKey)
                    .unique()
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Messages::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(ChatMembers::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Chats::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Users::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Username,
    UsernameLower,
    Email,
    PasswordHash,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Chats {
    Table,
    Id,
    Name,
    IsGroup,
    DirectKey,
    CreatedBy,
    CreatedAt,
    LastSeq,
    LastActivityAt,
}

#[derive(DeriveIden)]
enum ChatMembers {
    Table,
    ChatId,
    UserId,
    JoinedAt,
    DeliveredSeq,
    ReadSeq,
}

#[derive(DeriveIden)]
enum Messages {
    Table,
    Id,
    ChatId,
    Seq,
    SenderId,
    IdempotencyKey,
    Content,
    CreatedAt,
}
